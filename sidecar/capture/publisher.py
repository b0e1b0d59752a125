"""Publisher: records -> Redis stream, from a bounded in-memory queue, in pipelined batches.

The capture loop calls ``put()``, which never blocks. A daemon thread takes up to
``batch_size`` records at a time and sends them as one non-transactional pipeline of
``XADD <key> MAXLEN ~ <maxlen> * <fields>``. When fewer than ``batch_size`` records are
waiting, the thread lingers up to ``linger`` seconds for more before sending, so a steady
trickle goes out in a few round trips a second instead of one per record (the thread shares the
GIL with the capture loop: each wake-up and each round trip costs the capture loop CPU).

Every record ends in exactly one of: ``published``, or ``dropped_records{reason=...}``:

* ``queue_full``: ``put()`` found the queue full (Redis slow or away for long).
* ``rejected``: Redis answered the XADD with an error (``WRONGTYPE`` when the key is not a
  stream, ...). Retrying would get the same answer, so the record is dropped, and the error
  is counted in ``publish_errors{kind=<redis error code, lower case>}`` and logged (at most
  once per 10 s). A record that cannot be encoded at all is dropped the same way, alone.
* ``shutdown``: still queued (or in flight) when ``stop()`` ran out of time.

While Redis is unreachable (connection refused or lost, timeouts: ``redis_client.RETRYABLE_ERRORS``)
the batch is kept and retried with capped exponential back-off, ``put()`` keeps queueing up to
``queue_size``, ``redis_up`` is 0, and each failed attempt counts in
``publish_errors{kind="connection"|"timeout"}``. One warning when Redis goes away, one info
line when it is back.

Duplicates: a batch whose pipeline failed part-way (the connection broke after Redis had
applied some of the XADDs) is sent again in full, so those records can appear twice in the
stream; that is the only way a duplicate arises. ``(conn, seq)`` identifies a record
uniquely, so a consumer can drop the second copy.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import redis
import structlog
from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
from redis.backoff import ExponentialBackoff

from sidecar.capture.metrics import CaptureMetrics
from sidecar.contract.record import Record
from sidecar.contract.streams import stream_key
from sidecar.common.redis_client import RETRYABLE_ERRORS
from sidecar.capture.native import xadd_packer

__all__ = ["Publisher"]

BACKOFF = ExponentialBackoff(cap=5.0, base=0.05)  # 0.1, 0.2, 0.4 ... 5 s between attempts
LINGER = 0.01  # seconds a partial batch waits for more records before it is sent
LOG_INTERVAL = 10.0  # seconds between repeats of the "queue full" and "rejected" log lines


class Publisher:
    """Publishes records to the stream ``rewind:{stream}:http`` from a background thread.

    ``log`` is a structlog logger. ``sleep(seconds)`` is how the thread waits between retries;
    by default it waits on an event that ``stop()`` sets, so a shutdown never sits out a
    back-off.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        *,
        metrics: CaptureMetrics,
        maxlen: int = 1_000_000,
        queue_size: int = 100_000,
        batch_size: int = 1000,
        linger: float = LINGER,
        log=None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        for name, value in (
            ("maxlen", maxlen),
            ("queue_size", queue_size),
            ("batch_size", batch_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Publisher {name} must be a positive integer, got {value!r}")
        if not isinstance(linger, int | float) or not 0 <= linger <= 1:
            raise ValueError(f"Publisher linger must be 0..1 seconds, got {linger!r}")
        self.key = stream_key(stream)
        # every XADD starts the same: XADD <key> MAXLEN ~ <maxlen> *
        self._packer = xadd_packer(  # sidecar.contract.xadd's bytes, packed natively
            (b"XADD", self.key.encode(), b"MAXLEN", b"~", str(maxlen).encode(), b"*"))
        self._client = client
        self._metrics = metrics
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._linger = float(linger)
        self._log = log or structlog.get_logger("rewind.publisher")
        self._wake = threading.Event()  # set by stop(): cut a back-off short
        self._sleep = sleep or self._wake.wait

        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # guards everything below; flush() waits on it
        self._work = threading.Condition(lock)  # the thread waits on it for records to send
        self._queue: collections.deque[Record] = collections.deque()
        self._inflight: list[Record] = []  # the batch the thread is sending or retrying
        self._accepted = 0  # records put() took
        self._settled = 0  # records published or dropped after being accepted (FIFO)
        self._closing = False
        self._deadline = float("inf")  # monotonic time stop() gives up at
        self._abandoned = False  # stop() gave up: whatever the thread still holds is counted

        self._thread: threading.Thread | None = None
        self._published = 0
        self._rejected = 0
        self._dropped_full = 0
        self._dropped_shutdown = 0
        self._full_log = _Every(LOG_INTERVAL)  # guarded by _cond
        self._rejected_log = _Every(LOG_INTERVAL)  # the thread only

        metrics.queue_depth.set_function(lambda: self.depth)

    # -- API -----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Records waiting to be published (queued plus the batch in flight)."""
        with self._cond:
            return len(self._queue) + len(self._inflight)

    def start(self) -> None:
        """Start the publishing thread (a daemon)."""
        with self._cond:
            if self._thread is not None or self._closing:
                raise RuntimeError("Publisher.start() called twice or after stop()")
            self._thread = threading.Thread(target=self._run, name="rewind-publisher", daemon=True)
        self._thread.start()

    def put(self, record: Record) -> bool:
        """Queue ``record``; never blocks. False (and counted as dropped) when it was not taken."""
        with self._cond:
            queued = len(self._queue)
            if queued < self._queue_size and not self._closing:
                self._queue.append(record)
                self._accepted += 1
                # wake the thread for the first record, and when a full batch is there; the
                # ones in between wait for the linger to end
                if queued == 0 or queued + 1 == self._batch_size:
                    self._work.notify()
                return True
            if self._closing:
                self._metrics.dropped_records.labels("shutdown").inc()
                self._dropped_shutdown += 1
                return False
            self._metrics.dropped_records.labels("queue_full").inc()
            self._dropped_full += 1
            dropped = self._full_log.due()
        if dropped:
            self._log.warning(
                "publisher.queue_full",
                stream=self.key,
                dropped=dropped,
                queue_size=self._queue_size,
            )
        return False

    def put_many(self, records: list[Record]) -> int:
        """``put()`` for a batch, under one lock (the capture loop hands records over in
        batches); returns how many were taken, the rest are counted as ``put()`` counts them."""
        n = len(records)
        with self._cond:
            queued = len(self._queue)
            if self._closing:
                taken = 0
                self._metrics.dropped_records.labels("shutdown").inc(n)
                self._dropped_shutdown += n
            else:
                taken = max(0, min(n, self._queue_size - queued))
                self._queue.extend(records if taken == n else records[:taken])
                self._accepted += taken
                # as put() would: wake the thread for a first record and when a batch is full
                if taken and (queued == 0 or queued < self._batch_size <= queued + taken):
                    self._work.notify()
            dropped = 0
            if n - taken and not self._closing:
                self._metrics.dropped_records.labels("queue_full").inc(n - taken)
                self._dropped_full += n - taken
                dropped = self._full_log.due(n - taken)
        if dropped:
            self._log.warning("publisher.queue_full", stream=self.key, dropped=dropped,
                              queue_size=self._queue_size)
        return taken

    def flush(self, timeout: float) -> bool:
        """Wait until every record accepted so far is written (or rejected by Redis).

        Returns False if that did not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            while self._settled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what can be published within ``timeout`` seconds, then stop.

        Records left over are counted as ``dropped_records{reason="shutdown"}``; a batch that
        was on the wire at that moment is counted so too, though it may still land in Redis.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = deadline
            self._cond.notify_all()
            self._work.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._abandoned = True
            left = len(self._queue) + len(self._inflight)
            self._queue.clear()
            self._inflight = []
            if left:
                self._metrics.dropped_records.labels("shutdown").inc(left)
                self._dropped_shutdown += left
            self._settled += left
            self._cond.notify_all()
        log = self._log.warning if left else self._log.info
        log(
            "publisher.stopped",
            stream=self.key,
            published=self._published,
            dropped_shutdown=self._dropped_shutdown,
            dropped_queue_full=self._dropped_full,
            dropped_rejected=self._rejected,
        )

    # -- the thread ----------------------------------------------------------------------
    def _take(self) -> list[Record]:
        """Next batch; empty when stopping and nothing is left (or stop() gave up)."""
        with self._cond:
            while not self._queue and not self._closing:
                self._work.wait()
            if self._linger and len(self._queue) < self._batch_size and not self._closing:
                self._work.wait(self._linger)  # put() cuts it short once a batch is full
            if self._abandoned or time.monotonic() >= self._deadline:
                return []
            n = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._inflight = batch
            return batch

    def _run(self) -> None:
        failures = 0
        down_since: float | None = None
        batch: list[Record] = []
        while True:
            if not batch:
                batch = self._take()
                if not batch:
                    return
            try:
                results = self._send(batch)
            except RETRYABLE_ERRORS as exc:
                if self._abandoned:
                    return  # stop() gave up on this batch and has counted it
                failures += 1
                kind = "timeout" if isinstance(exc, redis.TimeoutError) else "connection"
                self._metrics.publish_errors.labels(kind).inc()
                self._metrics.redis_up.set(0)
                if down_since is None:
                    down_since = time.monotonic()
                    self._log.warning(
                        "publisher.redis_unreachable",
                        stream=self.key,
                        error=str(exc),
                        queued=self.depth,
                    )
                delay = min(BACKOFF.compute(failures), self._deadline - time.monotonic())
                if delay <= 0:
                    return  # stop() is out of time; it counts what is left
                self._sleep(delay)
                self._wake.clear()  # stop() cuts one back-off short, not every later one
                continue
            except Exception as exc:  # noqa: BLE001 -- a bug or bad data must not end the loop
                self._settle(batch, [exc] * len(batch))
                batch = []
                continue
            self._metrics.redis_up.set(1)
            if down_since is not None:
                self._log.info(
                    "publisher.redis_back",
                    stream=self.key,
                    down_s=round(time.monotonic() - down_since, 3),
                    queued=self.depth,
                )
                down_since = None
            failures = 0
            self._settle(batch, results)
            batch = []

    def _send(self, batch: list[Record]) -> list:
        """One pipelined round trip for the batch; a reply (or the error) per record, in order.

        The XADDs are packed here (``sidecar.contract.xadd``: one format per record) and sent
        as one write on a pooled connection, with the connection's own ``Retry`` around the
        round trip, as redis-py's pipeline does; building them through the pipeline object
        costs about five times the CPU per record. Those connection calls are below redis-py's
        documented API: pyproject.toml pins the exact redis-py version they were written for."""
        packed, bad = self._pack_batch(batch)
        replies = iter(self._round_trip(packed) if packed else ())
        return [bad[i] if i in bad else next(replies) for i in range(len(batch))]

    def _pack_batch(self, batch: list[Record]) -> tuple[list[bytes], dict[int, Exception]]:
        """The XADD of each record, RESP-encoded; records that cannot be encoded are left out
        (their index -> the error): they never reach Redis."""
        bad: dict[int, Exception] = {}
        packed = []
        pack = self._packer.pack
        for i, record in enumerate(batch):
            try:
                packed.append(pack(record))
            except Exception as exc:  # noqa: BLE001 -- one bad record must not sink the batch
                bad[i] = exc
        return packed, bad

    def _round_trip(self, packed: list[bytes]) -> list:
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            return conn.retry.call_with_retry(
                lambda: _exchange(conn, packed), lambda _error: conn.disconnect()
            )
        finally:
            pool.release(conn)

    def _settle(self, batch: list[Record], results: list) -> None:
        """Count a sent batch: each record published, or rejected when its reply is an error."""
        errors = [r for r in results if isinstance(r, Exception)]
        ok = len(batch) - len(errors)
        with self._cond:  # counted before flush() can see it settled
            if self._abandoned:
                return  # stop() has counted this batch as dropped at shutdown
            if ok:
                self._metrics.published.inc(ok)
                self._published += ok
            if errors:
                self._metrics.dropped_records.labels("rejected").inc(len(errors))
                self._rejected += len(errors)
            self._inflight = []
            self._settled += len(batch)
            self._cond.notify_all()
        if errors:
            first = errors[0]
            self._metrics.publish_errors.labels(_error_kind(first)).inc()
            rejected = self._rejected_log.due(len(errors))
            if rejected:
                self._log.error(
                    "publisher.rejected",
                    stream=self.key,
                    error=str(first) if isinstance(first, redis.ResponseError) else repr(first),
                    rejected=rejected,
                )


def _exchange(conn, packed: list[bytes]) -> list:
    """Write the packed commands at once, then read every reply (an error reply in its place),
    so the connection stays in step even when some commands fail.

    ``read_response()`` reads the socket (and turns its failures into redis-py's errors); the
    other replies that read brought in are taken straight from the connection's hiredis reader,
    as ``read_response()`` would return them, without its Python per reply (0.6 us of CPU per
    record). Below redis-py's documented API, like ``_send``: pyproject.toml pins redis-py, and
    tests/integration/test_publisher.py checks that the replies are still read this way."""
    conn.send_packed_command([b"".join(packed)])
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)  # made on connect
    replies, n = [], len(packed)
    while len(replies) < n:
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
        while reader is not None and len(replies) < n:
            try:
                reply = reader.gets()
            except Exception:
                conn.disconnect()  # as read_response() does after a reply it cannot parse
                raise
            if reply is _NOT_ENOUGH_DATA:  # the next reply is not here yet: read the socket
                break
            if isinstance(reply, redis.ConnectionError):  # read_response() raises these
                raise reply
            replies.append(reply)
    return replies


def _error_kind(exc: Exception) -> str:
    """Metric label: the Redis error code (``wrongtype``, ``oom``, ``err`` ...) for an answer
    from Redis, else the exception's class name (``unicodeencodeerror``)."""
    if not isinstance(exc, redis.ResponseError):
        return type(exc).__name__.lower()
    word = str(exc).split(" ", 1)[0]
    return word.lower() if word.isalpha() and word.isupper() and len(word) <= 16 else "response"


class _Every:
    """Lets a repeated log line through at most once per ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.held = 0

    def due(self, n: int = 1) -> int:
        """Record ``n`` occurrences; how many to report if a line is due now, else 0."""
        self.held += n
        now = time.monotonic()
        if now - self.last < self.interval:
            return 0
        held, self.held, self.last = self.held, 0, now
        return held
