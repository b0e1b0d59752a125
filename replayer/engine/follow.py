"""``--follow``: tail a live capture stream and deal each new request to a worker as it arrives.

``Follower.run(send, t0_wall)`` loops on ``XREAD BLOCK`` from the id it started at (the stream's
last id when the command started, or ``--from``), filters and rewrites each record with the
replay's rules, and hands the steps of one read to ``send(worker, steps)`` at once. A captured
connection is dealt to one worker the first time it is seen (the worker with the fewest steps
so far) and stays there, so its requests go out on one worker, in stream order (one sidecar
writes a connection, in order). A step is due when it reached the replayer (``due`` = arrival -
t0), so its ``lag`` in the report is send time - arrival. ``stop()`` (signal, ``--duration``)
ends the loop after the current read.

Nothing is dropped silently: unreadable records and Redis errors are counted (``stats``) and
logged; after a Redis error the loop retries from the last id it read, so no entry is skipped or
read twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import redis

from replayer.engine.plan import Step, make_step
from replayer.engine.rewrite import Request, Rules
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
    def __init__(self, client: redis.Redis, stream: str, rules: Rules, workers: int, *,
                 after_id: str, log=None, clock: Callable[[], float] = time.time,
                 block_ms: int = BLOCK_MS, count: int = COUNT) -> None:
        self.client = client
        self.key = stream_key(stream)
        self.rules = rules
        self.after_id = after_id
        self.start_after = after_id
        self.log = log
        self.clock = clock
        self.block_ms = block_ms
        self.count = count
        self.worker_of: dict[str, int] = {}
        self.load = [0] * workers  # steps dealt to each worker
        self.records = 0  # entries read
        self.skipped: Counter = Counter()  # reason -> records not sent (filters, bad records)
        self.recorded_status: Counter = Counter()
        self.redis_errors = 0
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.stopping = False

    @property
    def steps(self) -> int:
        return sum(self.load)

    @property
    def connections(self) -> int:
        return len(self.worker_of)

    def stop(self) -> None:
        self.stopping = True

    def run(self, send: Callable[[int, list[Step]], None], t0_wall: float) -> None:
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
            arrived = self.clock()
            batches: dict[int, list[Step]] = {}
            for _key, rows in reply or []:
                for eid, fields in rows:
                    self.after_id = eid.decode() if isinstance(eid, bytes) else eid
                    step, w = self._step(fields, max(0.0, arrived - t0_wall))
                    if step is not None:
                        batches.setdefault(w, []).append(step)
            for w, steps in batches.items():
                send(w, steps)

    def _step(self, fields: dict, due: float) -> tuple[Step | None, int]:
        self.records += 1
        try:
            r = Record.from_fields(fields)
        except RecordError as exc:
            self.skipped["bad_record"] += 1
            if self.log:
                self.log("replay.follow.bad_record", entry=self.after_id, error=str(exc))
            return None, -1
        req = self.rules.apply(r)
        if not isinstance(req, Request):
            self.skipped[req] += 1
            return None, -1
        self.first_ts_ns = self.first_ts_ns or r.ts_ns
        self.last_ts_ns = r.ts_ns
        w = self.worker_of.get(r.conn)
        if w is None:
            w = self.worker_of[r.conn] = min(range(len(self.load)), key=self.load.__getitem__)
        step = make_step(self.steps, r, req, due)
        self.load[w] += 1
        self.recorded_status[r.status] += 1
        return step, w


def open_follower(url: str, stream: str | None, rules: Rules, workers: int, *,
                  from_ns: int | None = None, from_id: tuple[int, int] | None = None,
                  log=None) -> Follower:
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
    return Follower(client, stream, rules, workers, after_id=after_id, log=log)
