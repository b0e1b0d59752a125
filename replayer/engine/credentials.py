"""Replay-time credentials: put real (test) secrets where the capture stored masked tokens.

``rewind-replay --credentials FILE`` (YAML or JSON):

    tokens:                       # a masked token -> the value sent instead, wherever it appears
      rwd_3f9a0c1d2e4b5a69: test-token-123      # header values, the target, the body
    headers:                      # a header the recorded request carries -> its value on replay
      X-Api-Key: test-api-key

``Authorization: Bearer rwd_3f9a0c1d2e4b5a69`` becomes ``Bearer test-token-123`` (the capture
keeps the scheme). ``Credentials.apply`` is called by ``replayer.engine.rewrite.Rules.apply`` on every
request before it is sent; the counts go to the report summary (``plan.credentials``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from sidecar.contract.tokens import TOKEN_RE

__all__ = ["Credentials", "CredentialsError", "load_credentials"]

_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class CredentialsError(ValueError):
    """A credentials file that cannot be used; one line for the user."""


@dataclass
class Credentials:
    tokens: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case name -> value
    requests: int = 0  # requests that had at least one substitution
    substitutions: int = 0  # values replaced, all requests together
    unresolved: int = 0  # requests still carrying a masked token (rwd_...) in a header
    _re: re.Pattern | None = None
    _raw: re.Pattern | None = None

    def __post_init__(self) -> None:
        if self.tokens:
            alternatives = "|".join(re.escape(t) for t in sorted(self.tokens, key=len, reverse=True))
            self._re = re.compile(alternatives)
            self._raw = re.compile(alternatives.encode("latin-1"))
            self._bytes = {k.encode("latin-1"): v.encode("latin-1") for k, v in self.tokens.items()}

    def apply(self, target: str, headers: list[tuple[str, str]], body: bytes):
        """(target, headers, body) with the substitutions made, counted."""
        n = 0
        out = []
        for k, v in headers:
            real = self.headers.get(k.lower())
            if real is not None:
                v, n = real, n + 1
            elif self._re is not None:
                v, c = self._re.subn(lambda m: self.tokens[m.group()], v)
                n += c
            out.append((k, v))
        if self._re is not None:
            target, c = self._re.subn(lambda m: self.tokens[m.group()], target)
            n += c
            if body:
                body, c = self._raw.subn(lambda m: self._bytes[m.group()], body)
                n += c
        if n:
            self.requests += 1
            self.substitutions += n
        if any(TOKEN_RE.search(v) for _, v in out):
            self.unresolved += 1
        return target, out, body

    def summary(self) -> dict:
        return {"requests": self.requests, "substitutions": self.substitutions,
                "unresolved_requests": self.unresolved}


def load_credentials(path: str) -> Credentials:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)  # JSON is YAML too
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise CredentialsError(f"{path}{where}: not valid YAML or JSON") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or set(data) - {"tokens", "headers"}:
        raise CredentialsError(f"{path}: expected a mapping with 'tokens' and/or 'headers', got "
                               f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    tokens = _pairs(path, "tokens", data.get("tokens") or {})
    headers = _pairs(path, "headers", data.get("headers") or {})
    for name in headers:
        if not _NAME.match(name):
            raise CredentialsError(f"{path}: headers: not a header name: {name!r}")
    for token in tokens:
        if not token:
            raise CredentialsError(f"{path}: tokens: an empty token")
    return Credentials(tokens, {k.lower(): v for k, v in headers.items()})


def _pairs(path: str, what: str, value) -> dict[str, str]:
    if not isinstance(value, dict):
        raise CredentialsError(f"{path}: {what} must be a mapping (masked value: real value)")
    out = {}
    for k, v in value.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise CredentialsError(f"{path}: {what}: the value for {k!r} must be a string")
        try:
            str(k).encode("latin-1"), str(v).encode("latin-1")
        except UnicodeEncodeError:
            raise CredentialsError(f"{path}: {what}: {k!r} is not latin-1 text") from None
        out[str(k)] = str(v)
    return out
