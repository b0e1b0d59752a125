"""Capture order from stream order, in bounded memory.

Sources deliver records by stream id (the time Redis received them). Capture order is by
``ts_ns`` (ties by stream id). The two differ by the publisher's delay and across sidecars, so
records are held in a heap and let out once the stream has moved ``reorder_ns`` past them: a
record whose stream id is more than ``reorder_ns`` later than its capture time arrives after
records captured later than it has been let out, and comes out late (out of capture order;
counted in ``ReadStats.late``). Memory is bounded by the records of ``reorder_ns`` of stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DEFAULT_REORDER_NS", "ReadStats", "capture_order"]

DEFAULT_REORDER_NS = 2 * 1_000_000_000


@dataclass
class ReadStats:
    scanned: int = 0  # entries looked at (the window's id range, margins included)
    matched: int = 0  # entries in the window, returned
    late: int = 0  # returned after a record captured later (see module docstring)
    from_archive: int = 0
    from_redis: int = 0
    from_file: int = 0
    held_max: int = 0  # most records held at once for reordering


def capture_order(items: Iterator[tuple], reorder_ns: int, stats: ReadStats) -> Iterator[tuple]:
    """(id, ts_ns, ...) items in id order -> the same items in (ts_ns, id) order, as far as
    ``reorder_ns`` allows."""
    heap: list[tuple] = []
    last_out = None
    for item in items:
        heapq.heappush(heap, (item[1], item[0], item))
        if len(heap) > stats.held_max:
            stats.held_max = len(heap)
        watermark = item[0][0] * 1_000_000 - reorder_ns  # this entry's arrival time - window
        while heap and heap[0][0] < watermark:
            ts, _sid, out = heapq.heappop(heap)
            if last_out is not None and ts < last_out:
                stats.late += 1
            last_out = ts if last_out is None else max(last_out, ts)
            yield out
    while heap:
        ts, _sid, out = heapq.heappop(heap)
        if last_out is not None and ts < last_out:
            stats.late += 1
        last_out = ts if last_out is None else max(last_out, ts)
        yield out
