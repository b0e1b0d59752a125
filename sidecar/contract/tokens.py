"""The masked-token format: redaction writes tokens, ``rewind-replay --credentials`` finds them
and swaps them for test credentials. ``rwd_`` + the first 16 hex digits (lower case) of a keyed
HMAC-SHA256 of the secret (``sidecar.redact.apply.Masker``)."""

from __future__ import annotations

import re

__all__ = ["TOKEN_HEX_DIGITS", "TOKEN_PREFIX", "TOKEN_RE"]

TOKEN_PREFIX = "rwd_"
TOKEN_HEX_DIGITS = 16
TOKEN_RE = re.compile(re.escape(TOKEN_PREFIX) + f"[0-9a-f]{{{TOKEN_HEX_DIGITS}}}")
