"""Values a response carries, each with its ``Extractor``; and ``extract`` to read the same
place in another answer (the candidate's, on replay).

Looked at: a JSON body's string and integer leaves (a leaf that is a URL also gives its path
segments and query parameters), ``Location`` / ``Content-Location`` (segments and parameters,
the redirect target), ``Set-Cookie`` (the cookie's value), ``ETag`` and other headers that are
not framing or caching, an HTML body's ``<input name value>`` and ``<meta name content>``.
Bodies are read as their content (gzip, deflate, br undone: ``content_coding.decoded``).
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote, unquote_plus, urlsplit

import orjson

from replayer.correlate import jsontext
from replayer.correlate.places import Extractor, header
from replayer.correlate.values import id_like, id_like_segment
from sidecar.contract.content_coding import coding_of, decoded

__all__ = ["extract", "response_values"]

MAX_SCAN_HTML = 256 << 10
_SKIP = frozenset({"date", "content-length", "content-type", "content-encoding", "connection",
                   "transfer-encoding", "keep-alive", "server", "vary", "cache-control",
                   "expires", "pragma", "accept-ranges", "age", "via", "last-modified",
                   "strict-transport-security", "x-content-type-options", "x-frame-options",
                   "content-security-policy", "referrer-policy", "alt-svc", "link"})
_URL_HEADERS = ("location", "content-location")

Found = tuple[str, Extractor, bool]  # (value, where, is the place id-like)


def response_values(headers, body: bytes, stats=None) -> list[Found]:
    """Every candidate value of one response (headers and decoded body), with its place."""
    out: list[Found] = []
    for k, v in headers:
        low = k.lower()
        if low in _SKIP or not v:
            continue
        if low in _URL_HEADERS:
            out += [(val, Extractor("header", low, part), idp) for part, val, idp in url_parts(v)]
        elif low == "set-cookie":
            name, eq, value = v.partition(";")[0].strip().partition("=")
            if eq and value:
                out.append((value, Extractor("cookie", name), True))
        else:
            out.append((v, Extractor("header", low), low == "etag" or id_like(low)))
    if body:
        _body(out, headers, decoded(body, coding_of(headers)), stats)
    return out


def url_parts(url: str) -> list[tuple[str, str, bool]]:
    """(part, value, id-like) for each path segment and query parameter of a URL or path."""
    u = urlsplit(url)
    out = [(f"seg:{i}", unquote(s), id_like_segment(unquote(s)))
           for i, s in enumerate(u.path.split("/")) if s]
    for pair in u.query.split("&") if u.query else ():
        name, eq, value = pair.partition("=")
        if eq and value:
            out.append((f"q:{unquote_plus(name)}", unquote_plus(value), id_like(unquote_plus(name))))
    return out


def _is_url(s: str) -> bool:
    return s.startswith(("/", "http://", "https://")) and len(s) <= 2048 and " " not in s


def _body(out: list[Found], headers, body: bytes, stats) -> None:
    ctype = (header(headers, "content-type") or "").lower()
    head = body.lstrip()[:1]
    if "json" in ctype or head in (b"{", b"["):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            if stats is not None and "json" in ctype:
                stats.bodies_unparsed += 1
            return
        for n, (steps, v) in enumerate(jsontext.leaves(doc)):
            if n >= jsontext.MAX_LEAVES:
                if stats is not None:
                    stats.leaves_cut += 1
                break
            if isinstance(v, float):  # measurements, not ids
                continue
            name = jsontext.show(steps)
            key = next((s for s in reversed(steps) if isinstance(s, str)), "")
            text = str(v)
            out.append((text, Extractor("json", name, "", steps), id_like(key)))
            if isinstance(v, str) and _is_url(v):
                out += [(val, Extractor("json", name, part, steps), idp)
                        for part, val, idp in url_parts(v)]
    elif "html" in ctype or head == b"<":
        out += [(v, Extractor("html", name), idp)
                for name, v, idp in html_values(body[:MAX_SCAN_HTML].decode("utf-8", "replace"))]


_TAG = re.compile(r"<(input|meta)\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"""([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""")


def html_values(text: str) -> list[tuple[str, str, bool]]:
    """(``input:NAME`` / ``meta:NAME``, value, id-like) for each ``<input name value>`` and
    ``<meta name content>`` tag (attributes in any order and quoting, entities decoded)."""
    found = []
    for m in _TAG.finditer(text):
        a = {k.lower(): html.unescape(v1 or v2 or v3) for k, v1, v2, v3 in _ATTR.findall(m.group(2))}
        name = a.get("name")
        if not name:
            continue
        if m.group(1).lower() == "input" and a.get("value"):
            found.append((f"input:{name}", a["value"],
                          a.get("type", "").lower() == "hidden" or id_like(name)))
        elif m.group(1).lower() == "meta" and a.get("content"):
            found.append((f"meta:{name}", a["content"], id_like(name)))
    return found


def extract(ex: Extractor, headers, body: bytes) -> str | None:
    """The value at ``ex`` in an answer (headers, body), or None when it is not there."""
    if ex.place == "json":
        try:
            v = orjson.loads(decoded(body, coding_of(headers)))
            for step in ex.steps:
                v = v[step]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return None
        if isinstance(v, bool) or not isinstance(v, str | int):
            return None
        return _part(str(v), ex.part)
    if ex.place == "header":
        v = header(headers, ex.name)
        return None if v is None else _part(v, ex.part)
    if ex.place == "cookie":
        for k, v in headers:
            if k.lower() == "set-cookie":
                name, _, value = v.partition(";")[0].strip().partition("=")
                if name == ex.name:
                    return value
        return None
    found = []
    _body(found, headers, decoded(body, coding_of(headers)), None)
    return next((v for v, where, _ in found if where == ex), None)


def _part(value: str, part: str) -> str | None:
    if not part:
        return value
    return next((v for p, v, _ in url_parts(value) if p == part), None)
