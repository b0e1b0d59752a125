"""Sending one step and timing it: ``send_step``, and the ``Clock`` the worker runs on.

A worker's ``replayer.engine.shard.Shard`` runs one greenlet per captured connection; each owns
one keep-alive connection (``replayer.engine.http1.Connection``, exactly one socket) and sends
that connection's requests in recorded order, each at its due time, with ``send_step``, which
hands the request's ``replayer.judge.result.Result`` to a sink (the worker's aggregator).

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

__all__ = ["GEVENT_CLOCK", "PRECONNECT_LEAD_S", "Clock", "preconnect", "send_step"]

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

def send_step(s: Step, client, t0: float, due_rel: float, prev_done: float,
              sink: Callable[[Result], None], *, worker: int, comparer: Comparer, fire=None,
              now: Callable[[], float] = time.monotonic, sent: float | None = None,
              req=None, after_answer=None) -> float:
    """Send one step now on ``client``, hand its ``Result`` to ``sink``; returns when it ended.

    ``prev_done`` is when the previous request of this connection was answered (its wait);
    ``req`` is ``client.prepare(s)`` when already built; ``after_answer(step, status, body)``,
    when given, sees every answer before it is judged (the correlation hook)."""
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
    if after_answer is not None and error is None:
        after_answer(s, status, body)  # correlation hook: learn values from the answer
    latency_ms = (done - sent) * 1000
    outcome = comparer.compare(s.rec_status, s.rec_body, status, body, s.rec_body_ok,
                               s.endpoint) if error is None else None
    result = Result(idx=s.idx, worker=worker, due=due_rel, sent=sent - t0,
                    lag_ms=(sent - due) * 1000, wait_ms=wait * 1000, latency_ms=latency_ms,
                    status=status, error=error, endpoint=s.endpoint,
                    status_ok=outcome.status_ok if outcome else False,
                    body_ok=outcome.body_ok if outcome else None,
                    diffs=list(outcome.diffs) if outcome else [], iteration=s.iteration,
                    body=body if comparer.keep_bodies else None)
    sink(result)
    if fire is not None:
        fire(request_type=s.method, name=s.endpoint, response_time=latency_ms,
             response_length=len(body),
             exception=Exception(error or f"HTTP {status}") if result.failed else None,
             context={})
    return done


def preconnect(client) -> None:
    """Open the connection before the first due time, so that send is not late by a connect."""
    try:
        client.connect()
    except OSError:
        pass  # the first request connects (and reports the failure) itself
