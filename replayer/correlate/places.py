"""Where values sit: ``Extractor`` (a place in a response), ``Use`` (a place in a request), and
``request_slots(req)``: every place of a request with its decoded text.

A request place is one of: ``path`` (segment index), ``query`` (parameter), ``header``
(lower-case name), ``cookie`` (name in ``Cookie``), ``json`` (a leaf of a JSON body), ``form``
(a field of an ``application/x-www-form-urlencoded`` body), ``body`` (any other text body).
Its ``encoding`` says how the value is written there: ``plain``, ``url`` (percent-encoded;
the slot's text is decoded) or ``base64`` (inside a base64 or base64url token of the slot,
e.g. ``Authorization: Basic``, an opaque cursor). Multipart bodies are not looked into.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, unquote_plus

import orjson

from replayer.correlate import jsontext
from replayer.correlate.values import id_like

__all__ = ["Extractor", "HttpRequest", "Slot", "Use", "header", "request_slots", "RecordRef"]

MAX_SCAN_BODY = 256 << 10  # request bodies longer than this are not looked into (counted)
_B64 = re.compile(r"[A-Za-z0-9+/_\-]{12,}={0,2}")
_SKIP_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding",
                           "connection", "accept", "accept-encoding", "accept-language",
                           "user-agent", "te", "upgrade", "expect", "keep-alive", "cookie"})
ENCODINGS = ("plain", "url", "base64")


class RecordRef(NamedTuple):
    """A record by its connection and its number on it: unique in a capture."""

    conn: str
    seq: int


class HttpRequest(NamedTuple):
    """The parts of a request a substitution rewrites (a ``Record`` has the same names)."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Extractor:
    """Where a response carries a value: ``place`` json | header | cookie | html; ``name`` the
    JSON path, header name, cookie name or ``input:NAME`` / ``meta:NAME``; ``part`` "" (the
    whole value) or, for a URL, ``seg:N`` (path segment N) / ``q:NAME`` (query parameter)."""

    place: str
    name: str
    part: str = ""
    steps: tuple = ()  # json: the path as keys and indices

    def template(self) -> str:
        name = jsontext.template(self.steps) if self.place == "json" else self.name
        return f"{self.place}:{name}" + (f" {self.part}" if self.part else "")


@dataclass(frozen=True, slots=True)
class Use:
    """Where a request carries a value (see the module docstring)."""

    place: str
    name: str
    encoding: str = "plain"
    steps: tuple = ()  # json: the path as keys and indices

    def template(self) -> str:
        name = jsontext.template(self.steps) if self.place == "json" else self.name
        enc = "" if self.encoding == "plain" else f" ({self.encoding})"
        return f"{self.place}:{name}{enc}"


@dataclass(slots=True)
class Slot:
    use: Use
    text: str  # the decoded text of the place (for base64: the decoded content)
    id_place: bool  # may a weak value be used here (a path segment, an id-like name)


def header(headers, name: str) -> str | None:
    low = name.lower()
    for k, v in headers:
        if k.lower() == low:
            return v
    return None


def request_slots(req, stats=None) -> list[Slot]:
    """Every place of ``req`` (method, target, headers, body) that can carry a value."""
    out: list[Slot] = []
    path, _, query = req.target.partition("?")
    for i, seg in enumerate(path.split("/")):
        if seg:
            text = unquote(seg)
            _add(out, Use("path", str(i), "url" if text != seg else "plain"), text, True)
    if query:
        _pairs(out, "query", query)
    for k, v in req.headers:
        low = k.lower()
        if low == "cookie":
            for pair in v.split(";"):
                name, eq, value = pair.strip().partition("=")
                if eq and value:
                    _add(out, Use("cookie", name), value, True)
        elif low not in _SKIP_HEADERS and v:
            _add(out, Use("header", low), v, id_like(low) or low in ("if-match", "if-none-match"))
    if req.body:
        _body(out, req, stats)
    return out


def _add(out: list[Slot], use: Use, text: str, id_place: bool) -> None:
    out.append(Slot(use, text, id_place))
    for tok in _B64.findall(text):  # base64 inside: a token whose decoding is text
        inner = b64_text(tok)
        if inner is not None:
            out.append(Slot(Use(use.place, use.name, "base64", use.steps), inner, False))


def b64_text(tok: str) -> str | None:
    """The text a base64 / base64url token encodes, or None when it is not text."""
    pad = tok.rstrip("=")
    if len(pad) % 4 == 1:
        return None
    try:
        raw = (base64.urlsafe_b64decode if ("-" in tok or "_" in tok) else base64.b64decode)(
            pad + "=" * (-len(pad) % 4))
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text or sum(c.isprintable() for c in text) < len(text) * 0.95:
        return None
    return text


def _pairs(out: list[Slot], place: str, text: str) -> None:
    for pair in text.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value:
            dec = unquote_plus(value)
            _add(out, Use(place, unquote_plus(name), "url" if dec != value else "plain"), dec,
                 id_like(unquote_plus(name)))


def _body(out: list[Slot], req, stats) -> None:
    body = req.body
    if len(body) > MAX_SCAN_BODY:
        if stats is not None:
            stats.bodies_not_scanned += 1
        return
    ctype = (header(req.headers, "content-type") or "").lower()
    if "json" in ctype or (not ctype and body.lstrip()[:1] in (b"{", b"[")):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            if stats is not None:
                stats.bodies_unparsed += 1
            return
        for n, (steps, v) in enumerate(jsontext.leaves(doc)):
            if n >= jsontext.MAX_LEAVES:
                if stats is not None:
                    stats.leaves_cut += 1
                break
            key = next((s for s in reversed(steps) if isinstance(s, str)), "")
            _add(out, Use("json", jsontext.show(steps), "plain", steps), str(v), id_like(key))
    elif "x-www-form-urlencoded" in ctype:
        _pairs(out, "form", body.decode("latin-1"))
    elif "multipart/" not in ctype:
        _add(out, Use("body", ""), body.decode("utf-8", "replace"), False)
