"""Which values can carry state: the distinctiveness rule, id-like names, and tokenizing.

The rule (docs/correlate.md, "Which values"): a value is

* **strong** when it could hardly appear by chance: 8 to 512 characters, no whitespace, at
  least 2.5 bits of Shannon entropy per character, and a digit in it, or (16 characters or
  more) both upper- and lower-case letters. UUIDs, tokens, JWTs, hashes, long numbers.
* **weak** otherwise (1 to 64 characters, no whitespace, not ``true``/``false``/``null``):
  small numbers, short slugs. A weak value counts only where its place marks an id: made by the
  server in an id-like position (a JSON field named ``id``, ``*_id``, ``fooId``, ``token``...,
  a path segment of ``Location`` holding a digit, ``ETag``, a cookie, a hidden form input) and
  used as a *whole* path segment or a *whole* field value whose name is id-like (or
  ``If-Match``/``If-None-Match``). Strong values count wherever they are, also inside longer
  text (a ``Bearer`` header, a cookie list, base64).

The same holds for what the client is taken to have sent first, and for an echo: an earlier
``{"qty": 2}`` does not make the server's order id 2 the client's own value, and neither does
``{"qty": 2}`` in the request that ``{"id": 2}`` answers; ``/orders/2`` or ``{"order_id": 2}``
there would (a weak value counts only as a whole id place, a strong one anywhere).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

__all__ = ["NONE", "STRONG", "WEAK", "id_like", "id_like_segment", "strength", "tokens"]

NONE, WEAK, STRONG = 0, 1, 2
MAX_VALUE_LEN = 512  # longer values are never bound (bodies, blobs): bounds memory per value
MAX_WEAK_LEN = 64
_LITERALS = frozenset({"true", "false", "null", "none", "undefined", "nan"})
_SPACE = re.compile(r"\s")
_DIGIT = re.compile(r"\d")
_ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "key", "token", "ref", "slug", "etag", "rev",
                       "cursor", "nonce", "sid", "csrf", "xsrf", "session", "code", "state",
                       "handle", "ticket"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-.~]{1,64}$|^[0-9a-fA-F]{8,}(-[0-9a-fA-F]+)*$")
_G2 = re.compile(r"[\s,;]+")
_G3 = re.compile(r"[A-Za-z0-9_\-.~+/=]+")
_G4 = re.compile(r"[A-Za-z0-9_\-]+")
MAX_TOKENS = 4096  # tokens taken from one text (a big body): the rest is not looked at


@lru_cache(maxsize=1 << 16)  # a pure function of the text; path words and tokens repeat a lot
def strength(value: str) -> int:
    """STRONG, WEAK or NONE for ``value`` (see the module docstring)."""
    n = len(value)
    if n == 0 or n > MAX_VALUE_LEN or _SPACE.search(value) or value.lower() in _LITERALS:
        return NONE
    if n >= 8 and _entropy(value) >= 2.5 and (
            _DIGIT.search(value) or (n >= 16 and value.lower() != value and value.upper() != value)):
        return STRONG
    return WEAK if n <= MAX_WEAK_LEN else NONE


def _entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


@lru_cache(maxsize=1 << 12)
def id_like(name: str) -> bool:
    """Does a field, header or cookie name mark an id (``id``, ``order_id``, ``orderId``,
    ``X-CSRF-Token``, ``csrfmiddlewaretoken``)?"""
    low = name.lower()
    if "csrf" in low or "xsrf" in low or "token" in low or "session" in low:
        return True
    words = _WORDS.findall(name)
    return bool(words) and words[-1].lower() in _ID_WORDS


def id_like_segment(segment: str) -> bool:
    """A URL path segment that looks like an id: holds a digit, or is long hex / a UUID."""
    return bool(_ID_SEGMENT.match(segment))


def tokens(text: str) -> frozenset[str]:
    """The pieces of ``text`` a value can be: the whole text, its comma/semicolon/space parts
    (quotes and a weak ETag's ``W/`` taken off), and its runs of token characters. Short texts
    (headers, path segments, ids: they repeat across requests) are remembered."""
    return _short_tokens(text) if len(text) <= SHORT_TEXT else frozenset(_tokens(text))


SHORT_TEXT = 256  # texts up to this long are cached by tokens() (at most 64 Ki of them)


@lru_cache(maxsize=1 << 16)
def _short_tokens(text: str) -> frozenset[str]:
    return frozenset(_tokens(text))


def _tokens(text: str) -> set[str]:
    out = {text}
    if len(text) > 2 and text[0] == text[-1] == '"':
        out.add(text[1:-1])
    for part in _G2.split(text)[:MAX_TOKENS]:
        if part:
            out.add(part)
            if part.startswith("W/"):
                part = part[2:]
            if len(part) > 2 and part[0] == part[-1] == '"':
                out.add(part[1:-1])
    out.update(_G3.findall(text, 0, 1 << 20)[:MAX_TOKENS])
    out.update(_G4.findall(text, 0, 1 << 20)[:MAX_TOKENS])
    return out
