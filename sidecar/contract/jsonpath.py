"""The small JSON path language shared by redaction rules (sidecar/redact/policy.py) and the
replayer's ``--ignore`` (replayer/judge/compare.py): ``$.a.b`` a field, ``[n]`` / ``[*]`` list items,
``..name`` a field at any depth."""

from __future__ import annotations

import re

__all__ = ["parse_path"]

_STEP = re.compile(r"\.\.([A-Za-z0-9_\-]+|\*)|\.([A-Za-z0-9_\-]+|\*)|\[(\d+|\*)\]")


def parse_path(text: str, *, example: str = "$.created_at") -> tuple:
    """``$.a[*]..b`` -> (("key","a"),("idx","*"),("any","b")); ValueError if not a path."""
    if not text.startswith("$"):
        raise ValueError(f"not a JSON path: {text!r} (start with $, e.g. {example})")
    steps, pos = [], 1
    while pos < len(text):
        m = _STEP.match(text, pos)
        if not m:
            raise ValueError(f"not a JSON path: {text!r} (at {text[pos:]!r})")
        kind = "any" if m.group(1) else "key" if m.group(2) else "idx"
        steps.append((kind, m.group(1) or m.group(2) or m.group(3)))
        pos = m.end()
    return tuple(steps)
