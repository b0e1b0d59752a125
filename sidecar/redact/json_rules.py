"""Apply JSON-path rules to a parsed JSON document in place: ``apply_path(doc, steps, act)``.

Paths are those of ``sidecar.redact.policy.parse_json_path``: ``$.a.b`` (a field), ``[*]`` /
``[2]`` (elements of a list), ``..name`` (a field of that name at any depth), ``.*`` (any field).
``act(container, key)`` masks or drops ``container[key]`` and returns how many values it changed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["apply_path"]

Act = Callable[[dict | list, object], int]


def apply_path(doc, steps: tuple, act: Act) -> int:
    """Run ``act`` on every value ``steps`` leads to; the number of values changed."""
    return _walk(doc, steps, 0, act) if steps else 0


def _walk(node, steps: tuple, i: int, act: Act) -> int:
    kind, name = steps[i]
    last = i == len(steps) - 1
    if kind == "any":
        return _any(node, name, steps, i, act)
    if kind == "key":
        if not isinstance(node, dict):
            return 0
        keys = list(node) if name == "*" else ([name] if name in node else [])
    else:
        if not isinstance(node, list):
            return 0
        if name == "*":
            keys = list(range(len(node) - 1, -1, -1))  # from the end: drops keep indexes valid
        else:
            keys = [int(name)] if int(name) < len(node) else []
    n = 0
    for k in keys:
        n += act(node, k) if last else _walk(node[k], steps, i + 1, act)
    return n


def _any(node, name: str, steps: tuple, i: int, act: Act) -> int:
    """``..name``: the field ``name`` of every object at any depth below ``node``."""
    last = i == len(steps) - 1
    n = 0
    if isinstance(node, dict):
        for k in list(node):
            if name == "*" or k == name:
                n += act(node, k) if last else _walk(node[k], steps, i + 1, act)
            if k in node:  # not dropped just now: look deeper
                n += _any(node[k], name, steps, i, act)
    elif isinstance(node, list):
        for item in node:
            n += _any(item, name, steps, i, act)
    return n
