"""JSON leaves with their paths, and where each sits in the text (to rewrite one in place).

``leaves(obj)`` walks a parsed document; ``spans(text)`` scans the text itself and gives each
leaf's character span, so a substitution changes exactly those characters and keeps the rest of
the body (spacing, key order, number formats) as the client sent it. Paths are tuples of keys
(str) and list indices (int); ``show(path)`` writes ``$.items[3].id`` (``$["a b"]`` for other
keys) and ``template(path)`` folds indices: ``$.items[*].id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from json.decoder import scanstring

__all__ = ["MAX_LEAVES", "leaves", "show", "spans", "template"]

MAX_LEAVES = 20_000  # leaves looked at per document; the rest are not (counted by the caller)
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERAL = re.compile(r"true|false|null")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def leaves(obj, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    """(path, value) of every string and number leaf (booleans and null are not values)."""
    stack = [(path, obj)]
    while stack:
        p, o = stack.pop()
        if isinstance(o, dict):
            stack.extend((p + (k,), v) for k, v in reversed(list(o.items())))
        elif isinstance(o, list):
            stack.extend((p + (i,), v) for i, v in reversed(list(enumerate(o))))
        elif isinstance(o, str | int | float) and not isinstance(o, bool):
            yield p, o


@lru_cache(maxsize=4096)  # a few paths recur on every record of an API: learning's hot path
def show(path: tuple) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else
                         f".{s}" if _KEY.match(s) else f"[{json.dumps(s)}]" for s in path)


@lru_cache(maxsize=4096)
def template(path: tuple) -> str:
    return "$" + "".join("[*]" if isinstance(s, int) else
                         f".{s}" if _KEY.match(s) else f"[{json.dumps(s)}]" for s in path)


def spans(text: str) -> dict[tuple, tuple[int, int]]:
    """path -> (start, end) of each leaf literal in ``text`` (strings with their quotes);
    ValueError if ``text`` is not one JSON value."""
    out: dict[tuple, tuple[int, int]] = {}
    end = _value(text, _WS.match(text, 0).end(), (), out)
    if _WS.match(text, end).end() != len(text):
        raise ValueError("extra data after the JSON value")
    return out


def _value(s: str, i: int, path: tuple, out: dict) -> int:
    c = s[i:i + 1]
    if c == "{":
        i = _WS.match(s, i + 1).end()
        if s[i:i + 1] == "}":
            return i + 1
        while True:
            if s[i:i + 1] != '"':
                raise ValueError(f"expected a key at {i}")
            key, i = scanstring(s, i + 1)
            i = _WS.match(s, i).end()
            if s[i:i + 1] != ":":
                raise ValueError(f"expected ':' at {i}")
            i = _value(s, _WS.match(s, i + 1).end(), path + (key,), out)
            i = _WS.match(s, i).end()
            if s[i:i + 1] == "}":
                return i + 1
            if s[i:i + 1] != ",":
                raise ValueError(f"expected ',' at {i}")
            i = _WS.match(s, i + 1).end()
    if c == "[":
        i = _WS.match(s, i + 1).end()
        if s[i:i + 1] == "]":
            return i + 1
        n = 0
        while True:
            i = _WS.match(s, _value(s, i, path + (n,), out)).end()
            n += 1
            if s[i:i + 1] == "]":
                return i + 1
            if s[i:i + 1] != ",":
                raise ValueError(f"expected ',' at {i}")
            i = _WS.match(s, i + 1).end()
    if c == '"':
        _, end = scanstring(s, i + 1)
        out[path] = (i, end)
        return end
    m = _NUMBER.match(s, i)
    if m:
        out[path] = (i, m.end())
        return m.end()
    m = _LITERAL.match(s, i)
    if m:
        return m.end()
    raise ValueError(f"not a JSON value at {i}")
