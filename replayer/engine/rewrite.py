"""Filters and rewrites applied to each record before it is replayed: ``Rules.apply(record)``.

Order: drop by method, path pattern or secret-bearing header; then credentials (masked tokens
-> real test values, ``replayer.engine.credentials``); then headers: drop, replace (``set``), append
(``add``), and the ``Host`` header. Framing headers (``Content-Length``,
``Transfer-Encoding``) are always dropped: the client frames the stored, de-chunked body itself.
Requests that cannot be sent faithfully are skipped with a reason, never silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from replayer.engine.credentials import Credentials
from sidecar.contract.record import Record

__all__ = ["Request", "Rules", "SKIP_REASONS"]

FRAMING = frozenset({"content-length", "transfer-encoding"})
SKIP_REASONS = ("method", "excluded", "not_included", "secret", "truncated", "upgrade")


@dataclass(frozen=True, slots=True)
class Request:
    """What goes on the wire for one record."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class Rules:
    """Every filter and rewrite of one replay; an empty ``Rules()`` sends records as captured."""

    methods: frozenset[str] | None = None  # only these methods (upper case)
    include: list[re.Pattern] = field(default_factory=list)  # path must match one of these
    exclude: list[re.Pattern] = field(default_factory=list)  # path must match none of these
    drop_if_header: frozenset[str] = frozenset()  # lower-case names: such requests are skipped
    drop_headers: frozenset[str] = frozenset()  # lower-case names removed from every request
    set_headers: list[tuple[str, str]] = field(default_factory=list)  # replace or add
    add_headers: list[tuple[str, str]] = field(default_factory=list)  # append
    host: str | None = None  # Host header value; None keeps the recorded one
    credentials: Credentials | None = None  # masked tokens -> real values (--credentials)

    def apply(self, r: Record) -> Request | str:
        """The request to send, or the reason (one of SKIP_REASONS) it is skipped."""
        if self.methods is not None and r.method.upper() not in self.methods:
            return "method"
        path = r.target.split("?", 1)[0]
        if self.include and not any(p.search(path) for p in self.include):
            return "not_included"
        if any(p.search(path) for p in self.exclude):
            return "excluded"
        names = {k.lower() for k, _ in r.headers}
        if names & self.drop_if_header:
            return "secret"
        if r.truncated:
            return "truncated"
        if "upgrade" in names:
            return "upgrade"
        target, recorded, body = r.target, r.headers, r.body
        if self.credentials is not None:
            target, recorded, body = self.credentials.apply(target, recorded, body)
        replaced = {k.lower() for k, _ in self.set_headers}
        if self.host is not None:
            replaced.add("host")
        headers = [(k, v) for k, v in recorded
                   if (low := k.lower()) not in FRAMING and low not in self.drop_headers
                   and low not in replaced]
        if self.host is not None:
            headers.insert(0, ("Host", self.host))
        headers += self.set_headers + self.add_headers
        return Request(r.method, target, headers, body)


def parse_header(text: str) -> tuple[str, str]:
    """``"Authorization: Bearer x"`` -> ``("Authorization", "Bearer x")``; ValueError if not."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise ValueError(f"not a header: {text!r} (use 'Name: value')")
    return name, value.strip()
