"""Redis stream ids (``<ms>-<seq>``) as sortable values: parse, format, neighbours, time.

The archive and the range reader join Redis and segments on stream ids, so ids are compared as
``(ms, seq)`` tuples, never as strings (``"9-0" > "10-0"`` as text).
"""

from __future__ import annotations

__all__ = ["MAX_ID", "MIN_ID", "StreamId", "format_id", "id_ms", "next_id", "parse_id", "prev_id"]

StreamId = tuple[int, int]

MIN_ID: StreamId = (0, 0)
MAX_ID: StreamId = ((1 << 64) - 1, (1 << 64) - 1)


def parse_id(value: str | bytes | StreamId) -> StreamId:
    """``"1700000000000-3"`` (or bytes, or a bare ``"1700000000000"``) -> ``(1700000000000, 3)``."""
    if isinstance(value, tuple):
        return value
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, sep, seq = text.partition("-")
    try:
        parsed = (int(ms), int(seq) if sep else 0)
    except ValueError:
        raise ValueError(f"not a stream id: {text!r} (expected <ms>-<seq>, e.g. 1700000000000-0)") from None
    if parsed[0] < 0 or parsed[1] < 0:
        raise ValueError(f"not a stream id: {text!r} (both parts must be non-negative)")
    return parsed


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


def next_id(value: StreamId) -> StreamId:
    """The smallest id greater than ``value``."""
    ms, seq = value
    return (ms, seq + 1) if seq < MAX_ID[1] else (ms + 1, 0)


def prev_id(value: StreamId) -> StreamId:
    """The greatest id smaller than ``value`` (``value`` itself for the minimum)."""
    ms, seq = value
    if seq:
        return (ms, seq - 1)
    return (ms - 1, MAX_ID[1]) if ms else MIN_ID


def id_ms(value: StreamId) -> int:
    """Milliseconds since the epoch at which Redis assigned the id (XADD time)."""
    return value[0]
