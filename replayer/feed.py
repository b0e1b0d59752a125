"""Where the records of a replay come from, until the range reader lands: ``open_feed(source)``.

A feed is an ``Iterable[Record]`` in capture order. Two kinds today:

* an exported file of JSON Lines, one ``Record.to_json()`` per line (``records.jsonl``);
* a Redis stream read with ``XRANGE`` in pages (``redis://host:port/db`` with ``stream=NAME``),
  optionally cut to ``[start_ns, end_ns]`` by the records' capture time.

Swapping in the range reader (archive folders, ``--from/--to`` on stream ids) is a change to
``open_feed`` only. Every problem is a ``FeedError`` whose message says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sidecar.record import Record, RecordError

__all__ = ["FeedError", "Window", "open_feed"]

PAGE = 1000  # entries per XRANGE call


class FeedError(Exception):
    """The source cannot be read: missing file, unreachable Redis, or a record that is not one."""


@dataclass(frozen=True, slots=True)
class Window:
    """Capture-time bounds in ns since the epoch, both inclusive; None means open."""

    start_ns: int | None = None
    end_ns: int | None = None

    def holds(self, ts_ns: int) -> bool:
        return (self.start_ns is None or ts_ns >= self.start_ns) and (
            self.end_ns is None or ts_ns <= self.end_ns)


def open_feed(source: str, *, stream: str | None = None, window: Window = Window(),
              redis_client=None) -> Iterable[Record]:
    """Records of ``source`` inside ``window``, in capture order (``ts_ns``, then conn/seq)."""
    if source.startswith(("redis://", "rediss://", "unix://")):
        if not stream:
            raise FeedError("a Redis source needs --stream NAME")
        records = _from_redis(source, stream, window, redis_client)
    else:
        if os.path.isdir(source):
            raise FeedError(f"{source} is a folder: archive folders need the range reader, "
                            "which is not wired in yet; export a JSON Lines file instead")
        if not os.path.isfile(source):
            raise FeedError(f"no such file: {source}")
        records = (r for r in _from_jsonl(source) if window.holds(r.ts_ns))
    return sorted(records, key=lambda r: (r.ts_ns, r.conn, r.seq))


def _from_jsonl(path: str) -> Iterator[Record]:
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Record.from_json(line)
            except RecordError as exc:
                raise FeedError(f"{path}:{lineno}: {exc}") from None


def _from_redis(url: str, name: str, window: Window, client) -> Iterator[Record]:
    import redis

    from sidecar.streams import connect, stream_key

    try:
        key = stream_key(name)
        client = client or connect(url)
    except ValueError as exc:
        raise FeedError(str(exc)) from None
    # Entry ids start with the XADD time in ms, close to (and never before) the capture time;
    # start one minute early and filter on ts_ns so no record of the window is missed.
    lo = "-" if window.start_ns is None else str(max(0, window.start_ns // 1_000_000 - 60_000))
    try:
        while True:
            page = client.xrange(key, min=lo, max="+", count=PAGE)
            for entry_id, fields in page:
                try:
                    record = Record.from_fields(fields)
                except RecordError as exc:
                    raise FeedError(f"{key} entry {entry_id.decode()}: {exc}") from None
                if window.end_ns is not None and record.ts_ns > window.end_ns + 60_000_000_000:
                    return
                if window.holds(record.ts_ns):
                    yield record
            if len(page) < PAGE:
                return
            lo = "(" + page[-1][0].decode()
    except redis.RedisError as exc:
        raise FeedError(f"cannot read {key} from Redis: {exc}") from None
