"""``--follow``: tail a live capture stream, record by record, as it grows.

``Follower.records(t0_wall)`` loops on ``XREAD BLOCK`` from the id it started at (the stream's
last id when the command started, or ``--from``) and yields each record with the time it
reached the replayer (s after ``t0_wall``), then ``None`` after each read (the master sends what
it gathered). The master deals them as it deals a range (``replayer.engine.dealer.Dealer``, due
= arrival, so a step's ``lag`` in the report is send time - arrival): a captured connection goes
to one worker the first time it is seen and stays there, so its requests go out on one worker,
in stream order (one sidecar writes a connection, in order). ``stop()`` ends the loop after the
current read.

Nothing is dropped silently: unreadable records and Redis errors are counted (``stats``) and
logged; after a Redis error the loop retries from the last id it read, so no entry is skipped or
read twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import redis

from replayer.source.feed import FeedError, SourceUnreachable
from sidecar.contract.record import Record, RecordError
from sidecar.contract.stream_ids import format_id, prev_id
from sidecar.contract.streams import stream_key

__all__ = ["Follower", "start_id"]

BLOCK_MS = 200  # how long one XREAD waits; also how soon stop() is noticed
COUNT = 1000  # entries per XREAD at most


def start_id(client: redis.Redis, stream: str, from_ns: int | None = None,
             from_id: tuple[int, int] | None = None) -> str:
    """The id to read after: the stream's last id now, or just before ``from_id`` or
    ``from_ns`` (ids are ms of arrival in Redis)."""
    if from_id is not None:
        return format_id(prev_id(from_id))
    if from_ns is not None:
        ms = from_ns // 1_000_000
        return f"{ms - 1}-18446744073709551615" if ms > 0 else "0-0"
    try:
        info = client.xinfo_stream(stream_key(stream))
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return "0-0"  # the stream does not exist yet: everything added to it is new
        raise
    last = info.get("last-generated-id") or b"0-0"
    return last.decode() if isinstance(last, bytes) else str(last)


class Follower:
    def __init__(self, client: redis.Redis, stream: str, *, after_id: str, log=None,
                 clock: Callable[[], float] = time.time, block_ms: int = BLOCK_MS,
                 count: int = COUNT) -> None:
        self.client = client
        self.key = stream_key(stream)
        self.after_id = after_id
        self.start_after = after_id
        self.log = log
        self.clock = clock
        self.block_ms = block_ms
        self.count = count
        self.entries = 0  # entries read
        self.bad_records = 0  # entries that are not records (skipped, logged)
        self.redis_errors = 0
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def records(self, t0_wall: float) -> Iterator[tuple[Record, float] | None]:
        """(record, arrival s after ``t0_wall``) for each new entry; None after each read."""
        backoff = 0.1
        while not self.stopping:
            try:
                reply = self.client.xread({self.key: self.after_id}, count=self.count,
                                          block=self.block_ms)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.redis_errors += 1
                if self.log:
                    self.log("replay.follow.redis_error", error=str(exc), retry_in_s=backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            due = max(0.0, self.clock() - t0_wall)
            for _key, rows in reply or []:
                for eid, fields in rows:
                    self.after_id = eid.decode() if isinstance(eid, bytes) else eid
                    self.entries += 1
                    try:
                        r = Record.from_fields(fields)
                    except RecordError as exc:
                        self.bad_records += 1
                        if self.log:
                            self.log("replay.follow.bad_record", entry=self.after_id,
                                     error=str(exc))
                        continue
                    yield r, due
            yield None


def open_follower(url: str, stream: str | None, *, from_ns: int | None = None,
                  from_id: tuple[int, int] | None = None, log=None) -> Follower:
    """A Follower on ``stream`` at ``url``, placed at its end (or at ``from_ns``) now.

    Raises ``FeedError`` for a bad URL or stream name, ``SourceUnreachable`` when Redis cannot be
    reached or read."""
    from sidecar.common.redis_client import connect

    if not stream:
        raise FeedError("--follow needs --stream NAME (records are in rewind:{NAME}:http)")
    try:
        stream_key(stream)
        client = connect(url)
    except ValueError as exc:
        raise FeedError(str(exc)) from None
    try:
        after_id = start_id(client, stream, from_ns, from_id)
    except redis.RedisError as exc:
        raise SourceUnreachable(f"cannot read the stream from Redis: {exc}") from None
    return Follower(client, stream, after_id=after_id, log=log)
