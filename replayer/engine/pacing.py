"""When each request of a worker's shard goes out: one greenlet per captured connection.

``replay_shard`` starts one greenlet per captured connection; each owns one keep-alive
connection (``replayer.engine.http1.Connection``, exactly one socket) and sends that
connection's requests in recorded order, each at its due time (``replay_connection``).
``send_step`` sends one request and appends its ``replayer.judge.result.Result``.

Open loop, and what happens when a connection is still busy: requests of *different*
connections never wait for each other, so a slow answer on one connection does not delay any
other. Within one connection HTTP/1.1 allows only one request in flight (no pipelining), as in
the recording, so a request whose predecessor has not been answered by its due time is sent
when the answer arrives. That delay is counted: every result carries ``lag`` (sent - due) and
``wait``, the part of the lag spent waiting for the connection (previous answer late).
``lag - wait`` is what the scheduler itself added.

Time comes from a ``Clock`` (``now()`` and a greenlet ``sleep()``), passed in: the real one is
``time.monotonic`` and ``gevent.sleep``; tests pass a simulated one and check the schedule
exactly (tests/unit/test_replay_pacing.py). How late real sends are is measured by
``make bench-replay``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import gevent

from replayer.engine.plan import Step
from replayer.judge.compare import Comparer
from replayer.judge.result import Result

__all__ = ["GEVENT_CLOCK", "PRECONNECT_LEAD_S", "Clock", "replay_connection", "replay_shard",
           "send_step"]

PRECONNECT_LEAD_S = 0.05  # how long before its first request a connection is opened


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _GeventClock:
    """``time.monotonic`` and ``gevent.sleep``: the clock of a real run."""

    __slots__ = ()
    now = staticmethod(time.monotonic)
    sleep = staticmethod(gevent.sleep)


GEVENT_CLOCK: Clock = _GeventClock()

DueOf = Callable[[Step, int], float]  # (step, loop iteration) -> due, s after the start


def replay_shard(steps: list[Step], make_client: Callable[[], object], t0: float, out: list, *,
                 worker: int, comparer: Comparer, fire=None, loop: bool = False,
                 duration: float | None = None, span: float = 0.0, due_of: DueOf | None = None,
                 stop_at: Callable[[], float | None] | None = None,
                 clock: Clock = GEVENT_CLOCK) -> list[str]:
    """Replay ``steps`` (a worker's shard, in recorded order): one greenlet and one client per
    captured connection, all running ``replay_connection``; returns when all are done, with the
    description of each greenlet that crashed."""
    by_conn: dict[str, list[Step]] = {}
    for s in steps:
        by_conn.setdefault(s.conn, []).append(s)
    clients = [make_client() for _ in by_conn]
    greenlets = [gevent.spawn(replay_connection, conn_steps, client, t0, out, worker=worker,
                              comparer=comparer, fire=fire, loop=loop, duration=duration,
                              span=span, due_of=due_of, stop_at=stop_at, clock=clock)
                 for conn_steps, client in zip(by_conn.values(), clients, strict=True)]
    gevent.joinall(greenlets)
    for c in clients:
        c.close()
    return [repr(g.exception) for g in greenlets if g.exception is not None]


def replay_connection(steps: list[Step], client, t0: float, out: list, *, worker: int,
                      comparer: Comparer, fire=None, loop: bool = False,
                      duration: float | None = None, span: float = 0.0,
                      due_of: DueOf | None = None,
                      stop_at: Callable[[], float | None] | None = None,
                      clock: Clock = GEVENT_CLOCK) -> None:
    """Send ``steps`` (one captured connection, in order) on ``client``; append one result each.

    ``t0`` is the start on ``clock``; a step is due at ``t0 + step.due (+ iteration * span)``,
    or at ``t0 + due_of(step, iteration)`` when given (ramp mode). Nothing due at or after
    ``duration`` (s after ``t0``) is sent; ``stop_at()``, when given, may return an earlier
    such time (the master's stop).
    """
    now, sleep = clock.now, clock.sleep

    def limit() -> float | None:
        stop = stop_at() if stop_at is not None else None
        return duration if stop is None else (stop if duration is None else min(stop, duration))

    prepared = [client.prepare(s) for s in steps]  # each request's bytes, built before the start
    if steps:  # connect shortly before the first request, as the recorded client did: a server
        # with a thread per connection (gunicorn gthread/sync) must not hold idle sockets
        lead = t0 + steps[0].due - PRECONNECT_LEAD_S - now()
        if lead > 0:
            sleep(lead)
    _preconnect(client)
    prev_done = t0
    iteration = 0
    while True:
        for s, req in zip(steps, prepared, strict=True):
            due_rel = due_of(s, iteration) if due_of is not None else s.due + iteration * span
            end = limit()
            if end is not None and due_rel >= end:
                return
            due = t0 + due_rel
            wait = due - now()
            if wait > 0:
                sleep(wait)
            sent = now()
            end = limit()
            if end is not None and sent - t0 >= end:
                return
            prev_done = send_step(s, client, t0, due_rel, prev_done, out, worker=worker,
                                  comparer=comparer, fire=fire, iteration=iteration,
                                  now=now, sent=sent, req=req)
        if not loop or not steps:
            return
        iteration += 1
        if span <= 0 and duration is None:
            return


def send_step(s: Step, client, t0: float, due_rel: float, prev_done: float, out: list, *,
              worker: int, comparer: Comparer, fire=None, iteration: int = 0,
              now: Callable[[], float] = time.monotonic, sent: float | None = None,
              req=None) -> float:
    """Send one step now on ``client``, append its ``Result`` to ``out``; returns when it ended.

    ``prev_done`` is when the previous request of this connection was answered (its wait);
    ``req`` is ``client.prepare(s)`` when already built."""
    due = t0 + due_rel
    sent = now() if sent is None else sent
    wait = max(0.0, prev_done - due)
    status, body, error = 0, b"", None
    if req is None:
        req = client.prepare(s)
    if req.data is None:  # cannot be sent as recorded (e.g. an invalid header): counted, not sent
        error = req.error
    else:
        try:
            status, body = client.send(req)
        except Exception as exc:  # any transport failure is a result, never a crash
            error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    done = now()
    latency_ms = (done - sent) * 1000
    outcome = comparer.compare(s.rec_status, s.rec_body, status, body, s.rec_body_ok,
                               s.endpoint) if error is None else None
    result = Result(idx=s.idx, worker=worker, due=due_rel, sent=sent - t0,
                    lag_ms=(sent - due) * 1000, wait_ms=wait * 1000, latency_ms=latency_ms,
                    status=status, error=error, endpoint=s.endpoint,
                    status_ok=outcome.status_ok if outcome else False,
                    body_ok=outcome.body_ok if outcome else None,
                    diffs=list(outcome.diffs) if outcome else [], iteration=iteration,
                    body=body if comparer.keep_bodies else None)
    out.append(result)
    if fire is not None:
        fire(request_type=s.method, name=s.endpoint, response_time=latency_ms,
             response_length=len(body),
             exception=Exception(error or f"HTTP {status}") if result.failed else None,
             context={})
    return done


def _preconnect(client) -> None:
    """Open the connection before the first due time, so that send is not late by a connect."""
    try:
        client.connect()
    except OSError:
        pass  # the first request connects (and reports the failure) itself
