"""Where the records of a replay come from: ``open_feed(source, window=...)``, a thin adapter
over the shared range reader (``replayer.source.reader.open_source``).

``source`` is what ``--source`` takes: an exported file, an archive folder, a Redis URL (with
``stream``), or a comma-separated Redis URL and archive folder read as one (Redis where the window
is still there, the archive where it was trimmed). ``window`` is a ``replayer.source.window.Window``
(capture times from inclusive, to exclusive; stream ids both inclusive).

``Feed.records()`` streams the window's records in capture order (``ts_ns``, then conn and seq),
each time it is called (a ``--loop`` reads the range again for each iteration): memory holds
what the reader holds (a page, the reorder window) plus ``REORDER_NS`` of records re-sorted by
(ts_ns, conn, seq), never the range. ``Feed.fraction()`` is how much of the range the current read
has covered, for the progress line's ETA.
Every problem is a ``FeedError`` whose message says what to change; Redis that cannot be reached
or read is its subclass ``SourceUnreachable``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import redis

from replayer.source.reader import SourceError, open_source
from replayer.source.window import Window
from sidecar.contract.record import Record, RecordError

__all__ = ["REORDER_NS", "Feed", "FeedError", "SourceUnreachable", "open_feed"]

REORDER_NS = 2 * 1_000_000_000  # records out of capture order by more than this stay so


class FeedError(Exception):
    """The source cannot be used: a missing file, a bad --source, a record that is not one."""


class SourceUnreachable(FeedError):
    """Redis could not be reached or read (the source itself may be right)."""


class Feed:
    def __init__(self, source: str, *, stream: str | None = None, window: Window | None = None,
                 redis_client=None) -> None:
        self.window = window or Window()
        specs = [s for s in source.split(",") if s] if "," in source else [source]
        try:
            self.src = open_source(specs, stream=stream, client=redis_client)
        except redis.RedisError as exc:
            raise SourceUnreachable(f"cannot read the stream from Redis: {exc}") from None
        except (SourceError, RecordError, ValueError) as exc:
            raise FeedError(str(exc)) from None
        self.first_ts_ns: int | None = None
        self.reached_ts_ns: int | None = None
        self.late = 0  # records let out after one captured later (more than REORDER_NS apart)
        self._end_ns: int | None = None  # the range's last capture time, from the spans
        self._looked = False

    def records(self) -> Iterator[Record]:
        """The window's records in capture order, streamed (raises ``FeedError``)."""
        heap: list[tuple] = []
        n = 0
        newest = None
        last_out = None
        try:
            for _, r in self.src.read(self.window):
                n += 1
                heapq.heappush(heap, (r.ts_ns, r.conn, r.seq, n, r))
                newest = r.ts_ns if newest is None else max(newest, r.ts_ns)
                while heap and heap[0][0] < newest - REORDER_NS:
                    last_out = self._out(heapq.heappop(heap)[4], last_out)
                    yield last_out
            while heap:
                last_out = self._out(heapq.heappop(heap)[4], last_out)
                yield last_out
        except redis.RedisError as exc:
            raise SourceUnreachable(f"cannot read the stream from Redis: {exc}") from None
        except (SourceError, RecordError, ValueError) as exc:
            raise FeedError(str(exc)) from None

    def _out(self, r: Record, last: Record | None) -> Record:
        if last is not None and r.ts_ns < last.ts_ns:
            self.late += 1
        if self.first_ts_ns is None:
            self.first_ts_ns = r.ts_ns
        self.reached_ts_ns = r.ts_ns
        return r

    def fraction(self) -> float | None:
        """How much of the window the current read has covered (0-1; None: unknown): bytes of
        an exported file, else capture time reached in a window with an end (``--to``) or up
        to the last record of the archive or stream (their spans, looked up once)."""
        if self.src.kind == "file":
            return self.src.backend.fraction()
        if self._end_ns is None and self.window.end_ns is None and not self._looked:
            self._looked = True
            try:
                ends = [s.last_ts_ns for s in self.src.span() if s.last_ts_ns]
            except Exception:  # noqa: BLE001 - only an ETA is at stake; the read goes on
                ends = []
            self._end_ns = max(ends) if ends else None
        end = self.window.end_ns or self._end_ns
        if end is None or self.first_ts_ns is None or end <= self.first_ts_ns:
            return None
        return (self.reached_ts_ns - self.first_ts_ns) / (end - self.first_ts_ns)


def open_feed(source: str, *, stream: str | None = None, window: Window | None = None,
              redis_client=None) -> list[Record]:
    """Records of ``source`` inside ``window``, in capture order (``ts_ns``, then conn/seq), as
    a list (tools and tests; a replay streams ``Feed.records()``)."""
    return list(Feed(source, stream=stream, window=window, redis_client=redis_client).records())
