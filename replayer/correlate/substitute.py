"""Rewriting a request: every recorded value replaced by the candidate's, where it is used.

``substitute(req, {recorded: new}, uses)`` rewrites the places ``uses`` names (a ``Binding``'s
uses), or, without ``uses``, every place ``locate`` finds the values in (the same places and
the same distinctiveness rule learning uses). Each place is rewritten in its own encoding:
a path segment or query/form value percent-encoded as it was, a JSON leaf in place (the rest of
the body's bytes unchanged; a number stays a number when the new value is one), a value inside a
base64 token re-encoded with the token's alphabet and padding. A strong value is replaced
wherever it stands between non-alphanumeric characters of the place; a weak one only when it is
the whole place. ``Content-Length`` follows a body that changed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from replayer.correlate import jsontext
from replayer.correlate.places import _B64, HttpRequest, Use, b64_text, request_slots
from replayer.correlate.values import STRONG, strength, tokens

__all__ = ["Substituted", "locate", "substitute"]

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


class Substituted(NamedTuple):
    request: HttpRequest
    replaced: int  # how many occurrences were rewritten


def locate(req, values: Iterable[str]) -> list[tuple[str, Use]]:
    """(value, place) for each of ``values`` that ``req`` carries, as learning finds them."""
    wanted = set(values)
    out = []
    for slot in request_slots(req):
        for v in wanted & tokens(slot.text):
            if strength(v) == STRONG or (slot.id_place and slot.text == v):
                out.append((v, slot.use))
    return out


def substitute(req, mapping: Mapping[str, str], uses: Iterable[Use] | None = None) -> Substituted:
    """``req`` with each recorded value of ``mapping`` replaced by its new value."""
    pairs = [(old, new) for old, new in mapping.items() if old != new]
    if uses is None:
        uses = [u for _v, u in locate(req, [o for o, _ in pairs])]
    r = _Req(req)
    for use in dict.fromkeys(uses):
        for old, new in pairs:
            r.apply(use, old, new)
    return Substituted(r.build(req), r.count)


class _Req:
    def __init__(self, req) -> None:
        self.path, self.sep, self.query = req.target.partition("?")
        self.headers = list(req.headers)
        self.body = req.body
        self.count = 0

    def apply(self, use: Use, old: str, new: str) -> None:
        p, enc = use.place, use.encoding
        if p == "path":
            segs = self.path.split("/")
            i = int(use.name)
            if i < len(segs):
                segs[i] = self._text(segs[i], old, new, enc)
                self.path = "/".join(segs)
        elif p == "query":
            self.query = self._pairs(self.query, use.name, old, new, enc)
        elif p == "form":
            self.body = self._pairs(self.body.decode("latin-1"), use.name, old, new,
                                    enc).encode("latin-1")
        elif p == "header":
            self.headers = [(k, self._text(v, old, new, enc) if k.lower() == use.name else v)
                            for k, v in self.headers]
        elif p == "cookie":
            self.headers = [(k, self._cookie(v, use.name, old, new, enc)
                             if k.lower() == "cookie" else v) for k, v in self.headers]
        elif p == "json":
            self._json(use.steps, old, new, enc)
        elif p == "body":
            text = self.body.decode("utf-8", "surrogateescape")
            self.body = self._text(text, old, new, enc).encode("utf-8", "surrogateescape")

    def _text(self, raw: str, old: str, new: str, enc: str, plus: bool = False) -> str:
        out, n = rewrite_text(raw, old, new, enc, plus)
        self.count += n
        return out

    def _pairs(self, text: str, name: str, old: str, new: str, enc: str) -> str:
        parts = []
        for pair in text.split("&"):
            k, eq, v = pair.partition("=")
            if eq and unquote_plus(k) == name:
                pair = f"{k}={self._text(v, old, new, enc, plus=True)}"
            parts.append(pair)
        return "&".join(parts)

    def _cookie(self, value: str, name: str, old: str, new: str, enc: str) -> str:
        parts = []
        for pair in value.split(";"):
            k, eq, v = pair.partition("=")
            if eq and k.strip() == name:
                pair = f"{k}={self._text(v, old, new, enc)}"
            parts.append(pair)
        return ";".join(parts)

    def _json(self, steps: tuple, old: str, new: str, enc: str) -> None:
        try:
            text = self.body.decode("utf-8")
            span = jsontext.spans(text).get(steps)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return
        if span is None:
            return
        a, b = span
        lit = text[a:b]
        if lit.startswith('"'):
            s = json.loads(lit)
            s2 = self._text(s, old, new, enc)
            if s2 == s:
                return
            lit2 = json.dumps(s2, ensure_ascii="\\u" in lit)
        elif lit == old and enc == "plain":
            lit2 = new if _NUMBER.match(new) else json.dumps(new)
            self.count += 1
        else:
            return
        self.body = (text[:a] + lit2 + text[b:]).encode("utf-8")

    def build(self, req) -> HttpRequest:
        target = self.path + self.sep + self.query
        headers = self.headers
        if self.body != req.body:
            headers = [(k, str(len(self.body)) if k.lower() == "content-length" else v)
                       for k, v in headers]
        return HttpRequest(req.method, target, headers, self.body)


_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _replace_bounded(raw: str, old: str, new: str) -> tuple[str, int]:
    """``raw`` with each ``old`` that stands between non-alphanumeric characters (or the ends)
    replaced, left to right; the same as ``_bounded(old).subn`` without a regex per value (a
    replay rewrites every request: this is its hot path)."""
    j = raw.find(old)
    if j < 0:
        return raw, 0
    out, i, n, k, end = [], 0, 0, len(old), len(raw)
    while j >= 0:
        if (j == 0 or raw[j - 1] not in _ALNUM) and (j + k == end or raw[j + k] not in _ALNUM):
            out += (raw[i:j], new)
            i = j + k
            n += 1
            j = raw.find(old, i)
        else:
            j = raw.find(old, j + 1)
    out.append(raw[i:])
    return "".join(out), n


def _bounded(old: str) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(old) + r"(?![A-Za-z0-9])")


def rewrite_text(raw: str, old: str, new: str, enc: str = "plain",
                 plus: bool = False) -> tuple[str, int]:
    """``raw`` with ``old`` replaced by ``new`` in encoding ``enc``; (text, replacements).
    Short texts (a header, a segment: the same ones come back in request after request of a
    replay) are remembered."""
    if len(raw) <= 512:
        return _rewrite_short(raw, old, new, enc, plus)
    return _rewrite(raw, old, new, enc, plus)


@lru_cache(maxsize=1 << 14)
def _rewrite_short(raw: str, old: str, new: str, enc: str, plus: bool) -> tuple[str, int]:
    return _rewrite(raw, old, new, enc, plus)


def _rewrite(raw: str, old: str, new: str, enc: str, plus: bool) -> tuple[str, int]:
    if enc == "plain":
        if raw == old:
            return new, 1
        return _replace_bounded(raw, old, new)
    if enc == "url":
        dec = unquote_plus(raw) if plus else unquote(raw)
        if old not in dec:
            return raw, 0
        for fn in ((lambda s: quote_plus(s, safe="")) if plus else (lambda s: quote(s, safe="")),
                   lambda s: quote(s, safe="/:@"), lambda s: s):  # as the client encoded it
            out, n = _bounded(fn(old)).subn(lambda _m, f=fn: f(new), raw)
            if n:
                return out, n
        out, n = rewrite_text(dec, old, new, "plain")
        return (quote_plus(out, safe="") if plus else quote(out, safe="")), n
    if enc == "base64":
        total = 0

        def one(m: re.Match) -> str:
            nonlocal total
            tok = m.group(0)
            inner = b64_text(tok)
            if inner is None:
                return tok
            out, n = rewrite_text(inner, old, new, "plain")
            if not n:
                return tok
            total += n
            urlsafe = "-" in tok or "_" in tok or ("+" not in tok and "/" not in tok
                                                   and not tok.endswith("="))
            coded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(
                out.encode("utf-8")).decode()
            return coded if tok.endswith("=") else coded.rstrip("=")

        return _B64.sub(one, raw), total
    raise ValueError(f"unknown encoding {enc!r}")
