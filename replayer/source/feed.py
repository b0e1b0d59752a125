"""Where the records of a replay come from: ``open_feed(source, window=...)``, a thin adapter
over the shared range reader (``replayer.source.reader.open_source``).

``source`` is what ``--source`` takes: an exported file, an archive folder, a Redis URL (with
``stream``), or a comma-separated Redis URL and archive folder read as one (Redis where the window
is still there, the archive where it was trimmed). ``window`` is a ``replayer.source.window.Window``
(capture times from inclusive, to exclusive; stream ids both inclusive). The result is a list of
records in capture order (the plan shards whole connections, so it needs the window at once).
Every problem is a ``FeedError`` whose message says what to change; Redis that cannot be reached
or read is its subclass ``SourceUnreachable``.
"""

from __future__ import annotations

import redis

from replayer.source.reader import SourceError, open_source
from replayer.source.window import Window
from sidecar.contract.record import Record, RecordError

__all__ = ["FeedError", "SourceUnreachable", "open_feed"]


class FeedError(Exception):
    """The source cannot be used: a missing file, a bad --source, a record that is not one."""


class SourceUnreachable(FeedError):
    """Redis could not be reached or read (the source itself may be right)."""


def open_feed(source: str, *, stream: str | None = None, window: Window | None = None,
              redis_client=None) -> list[Record]:
    """Records of ``source`` inside ``window``, in capture order (``ts_ns``, then conn/seq)."""
    specs = [s for s in source.split(",") if s] if "," in source else [source]
    try:
        src = open_source(specs, stream=stream, client=redis_client)
        records = [r for _, r in src.read(window or Window())]
    except redis.RedisError as exc:
        raise SourceUnreachable(f"cannot read the stream from Redis: {exc}") from None
    except (SourceError, RecordError, ValueError) as exc:
        raise FeedError(str(exc)) from None
    return sorted(records, key=lambda r: (r.ts_ns, r.conn, r.seq))
