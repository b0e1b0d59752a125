"""``--from``/``--to`` values: ISO-8601, relative (``-15m``), ``now``, or epoch seconds (``@...``).

All times become integers of nanoseconds since the epoch, like a record's ``ts_ns``.

* ``2024-05-14T10:00:00Z``, ``2024-05-14T10:00+02:00``, ``2024-05-14 10:00``, ``2024-05-14``:
  ISO-8601; without an offset the machine's local time zone applies (UTC in most containers).
* ``now``; ``-15m``, ``-2h30m``, ``-7d``: that long before now (units ``ms s m h d w``).
* ``+15m``: for ``--to``, that long after ``--from``; alone, after now.
* ``@1715680800`` or ``@1715680800.25``: seconds since the epoch.
* ``1732312345678-0``: a stream id (``parse_bound`` only): the window is then an id range.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

__all__ = ["TimeSpecError", "format_ns", "join_relative_times", "parse_bound", "parse_duration_ns",
           "parse_time"]

_STREAM_ID = re.compile(r"^(\d{5,}|0)-(\d+)$")  # ms since the epoch: not a date like 2024-05

_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
            "d": 86_400_000_000_000, "w": 7 * 86_400_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HINT = "use ISO-8601 (2024-05-14T10:00:00Z), now, a relative time (-15m, -2h30m, +10m) or @epoch"


class TimeSpecError(ValueError):
    """A time or duration that cannot be read; the message says what would work."""


def parse_duration_ns(text: str) -> int:
    """``15m`` / ``2h30m`` / ``500ms`` / ``1.5h`` -> nanoseconds."""
    s = text.strip().lower().replace(" ", "")
    if not s or _PART.sub("", s):
        raise TimeSpecError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h30m, 7d)")
    return int(sum(float(n) * _UNIT_NS[u] for n, u in _PART.findall(s)))


def parse_time(text: str, *, now_ns: int | None = None, base_ns: int | None = None) -> int:
    """One ``--from``/``--to`` value -> ns since the epoch. ``base_ns`` anchors ``+DUR``."""
    if not isinstance(text, str) or not text.strip():
        raise TimeSpecError(f"empty time: {_HINT}")
    s = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    low = s.lower()
    if low == "now":
        return now
    if low[0] in "+-" and len(low) > 1 and low[1].isdigit() and _PART.match(low[1:]):
        delta = parse_duration_ns(low[1:])
        if low[0] == "-":
            return now - delta
        return (base_ns if base_ns is not None else now) + delta
    if s.startswith("@"):
        try:
            return int(round(float(s[1:]) * 1e9))
        except ValueError:
            raise TimeSpecError(f"not epoch seconds: {text!r} ({_HINT})") from None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise TimeSpecError(f"not a time: {text!r} ({_HINT})") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time zone
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def parse_bound(text: str, *, now_ns: int | None = None,
                base_ns: int | None = None) -> tuple[int | None, tuple[int, int] | None]:
    """A ``--from``/``--to`` that may also be a stream id -> (ns, None) or (None, (ms, seq))."""
    m = _STREAM_ID.match(text.strip()) if isinstance(text, str) else None
    if m:
        return None, (int(m.group(1)), int(m.group(2)))
    return parse_time(text, now_ns=now_ns, base_ns=base_ns), None


def format_ns(ns: int | None) -> str:
    """ns since the epoch -> ``2024-05-14T10:00:00.123Z`` ("-" for None)."""
    if ns is None:
        return "-"
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns // 1_000_000) % 1000:03d}Z"


TIME_FLAGS = ("--from", "--to")


def join_relative_times(argv: list[str]) -> list[str]:
    """``--from -15m`` -> ``--from=-15m``: argparse would take ``-15m`` for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in TIME_FLAGS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out
