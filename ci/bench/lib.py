"""What the `make bench-*` scripts share."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(result: dict, out: str | Path) -> Path:
    """Write a benchmark's JSON (creating its folder), say where, and return the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"JSON: {path}")
    return path
