"""Compare a replayed response with the recorded one: ``Comparer(ignore).compare(...)``.

Status codes must be equal. Bodies: when both parse as JSON, they are compared value by value
and the differing JSON paths are listed (``$.items[3].id``), leaving out the ``ignore`` paths;
otherwise the bytes must be equal. Ignore paths: ``$.created_at`` (that field), ``$.items[*].id``
(any element), ``$..id`` (a field of that name at any depth), read by
``sidecar.contract.jsonpath.parse_path`` (the redaction rules use the same paths).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from sidecar.contract.content_coding import decoded
from sidecar.contract.jsonpath import parse_path

__all__ = ["Comparer", "Outcome", "body_diffs"]

MAX_DIFFS = 5  # differing paths kept per response
_MAY_BE_JSON = re.compile(rb"[ \t\r\n]*[\[{\"\-0-9tfn]")  # how a JSON text can start


@dataclass(frozen=True, slots=True)
class Outcome:
    status_ok: bool
    body_ok: bool | None  # None: not compared (status differs, or recorded body was cut)
    diffs: tuple[str, ...] = ()


def _matches(pattern: tuple, path: tuple) -> bool:
    if not pattern:
        return not path
    kind, name = pattern[0]
    if kind == "any":  # ..name: skip any number of steps, then a key `name`
        return any(path[i][0] == "key" and (name == "*" or path[i][1] == name)
                   and _matches(pattern[1:], path[i + 1:]) for i in range(len(path)))
    if not path or path[0][0] != kind:
        return False
    return (name == "*" or str(path[0][1]) == name) and _matches(pattern[1:], path[1:])


def _show(path: tuple) -> str:
    return "$" + "".join(f".{v}" if k == "key" else f"[{v}]" for k, v in path)


class Comparer:
    """``ignore``: paths left out everywhere; ``noise``: per endpoint (learned, see
    ``replayer.judge.noise``; ``$`` there means the endpoint's bodies are not compared at all).
    ``keep_bodies``: results also carry the answer's body (for learning noise)."""

    def __init__(self, ignore: list[str] = (), noise: dict[str, list[str]] | None = None,
                 keep_bodies: bool = False) -> None:
        self.ignore = [parse_path(p) for p in ignore]
        self.noise = {ep: [parse_path(p) for p in paths] for ep, paths in (noise or {}).items()}
        self.keep_bodies = keep_bodies

    def compare(self, rec_status: int, rec_body: bytes, status: int, body: bytes,
                rec_body_ok: bool = True, endpoint: str = "") -> Outcome:
        if status != rec_status:
            return Outcome(False, None)
        ignore = self.ignore + self.noise.get(endpoint, [])
        if not rec_body_ok or () in ignore:
            return Outcome(True, None)
        if rec_body == body:
            return Outcome(True, True)
        diffs = body_diffs(rec_body, body, ignore)
        return Outcome(True, not diffs, tuple(diffs[:MAX_DIFFS]))


def body_diffs(a_body: bytes, b_body: bytes, ignore: list[tuple] = ()) -> list[str]:
    """Every JSON path where two bodies differ (``$ (not JSON, bytes differ)`` if not JSON);
    gzip or deflate bodies are compared as their content (``content_coding.decoded``)."""
    if a_body == b_body:
        return []
    a_body, b_body = decoded(a_body), decoded(b_body)
    if a_body == b_body:  # the same content, coded differently (a gzip header's time)
        return []
    if not (_MAY_BE_JSON.match(a_body) and _MAY_BE_JSON.match(b_body)):
        return ["$ (not JSON, bytes differ)"]  # spares the parse (and its exception) for text
    try:
        a, b = orjson.loads(a_body), orjson.loads(b_body)
    except orjson.JSONDecodeError:
        return ["$ (not JSON, bytes differ)"]
    diffs: list[str] = []
    _walk(a, b, (), diffs, ignore)
    return diffs


def _walk(a, b, path: tuple, diffs: list[str], ignore: list[tuple]) -> None:
    if any(_matches(p, path) for p in ignore):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                if not any(_matches(p, path + (("key", k),)) for p in ignore):
                    diffs.append(_show(path + (("key", k),)))
            else:
                _walk(a[k], b[k], path + (("key", k),), diffs, ignore)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(_show(path) + " (length)")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _walk(x, y, path + (("idx", i),), diffs, ignore)
    elif a != b or type(a) is not type(b):
        diffs.append(_show(path))
