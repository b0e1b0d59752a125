"""Where the records of a replay come from: ``open_feed(source)``, a thin adapter over the
shared range reader (``replayer.source.reader.open_source``).

``source`` is what ``--source`` takes: an exported file, an archive folder, a Redis URL (with
``stream``), or a comma-separated Redis URL and archive folder read as one (Redis where the window
is still there, the archive where it was trimmed). The result is a list of records in capture
order (the plan shards whole connections, so it needs the window at once). Every problem is a
``FeedError`` whose message says what to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from replayer.source import window as rw
from replayer.source.reader import SourceError, open_source
from sidecar.contract.record import Record, RecordError

__all__ = ["FeedError", "Window", "open_feed"]


class FeedError(Exception):
    """The source cannot be read: missing file, unreachable Redis, or a record that is not one."""


@dataclass(frozen=True, slots=True)
class Window:
    """Capture-time bounds in ns since the epoch and stream-id bounds, all inclusive; None
    means open."""

    start_ns: int | None = None
    end_ns: int | None = None
    start_id: tuple[int, int] | None = None
    end_id: tuple[int, int] | None = None

    def holds(self, ts_ns: int) -> bool:
        return (self.start_ns is None or ts_ns >= self.start_ns) and (
            self.end_ns is None or ts_ns <= self.end_ns)


def open_feed(source: str, *, stream: str | None = None, window: Window = Window(),
              redis_client=None) -> Iterable[Record]:
    """Records of ``source`` inside ``window``, in capture order (``ts_ns``, then conn/seq)."""
    specs = [s for s in source.split(",") if s] if "," in source else [source]
    end = None if window.end_ns is None else window.end_ns + 1  # the reader's end is exclusive
    try:
        src = open_source(specs, stream=stream, client=redis_client)
        records = [r for _, r in src.read(rw.Window(start_ns=window.start_ns, end_ns=end,
                                                    start_id=window.start_id,
                                                    end_id=window.end_id))]
    except redis.RedisError as exc:
        raise FeedError(f"cannot read the stream from Redis: {exc}") from None
    except (SourceError, RecordError, ValueError) as exc:
        raise FeedError(str(exc)) from None
    return sorted(records, key=lambda r: (r.ts_ns, r.conn, r.seq))
