"""The Locust user that replays one worker's shard, and the per-connection pacing.

One ``ReplayUser`` runs on each worker. It starts one greenlet per captured connection; each
greenlet owns one keep-alive connection (``replayer.engine.http1.Connection``, exactly one socket),
and sends that connection's requests in recorded order, each at its due time.

Open loop, and what happens when a connection is still busy: requests of *different*
connections never wait for each other, so a slow answer on one connection does not delay any
other. Within one connection HTTP/1.1 allows only one request in flight (no pipelining), as in
the recording, so a request whose predecessor has not been answered by its due time is sent
when the answer arrives. That delay is counted: every result carries ``lag`` (sent - due) and
``wait``, the part of the lag spent waiting for the connection (previous answer late).
``lag - wait`` is what the scheduler itself added.

Why not FastHttpSession: it sends a dict of headers (no repeated names), adds
``Accept-Encoding``, keeps cookies and follows redirects; a replay must send the recorded
headers and nothing else. geventhttpclient's ``HTTPClient`` itself cost more Python per request
than the syscalls did; ``replayer.engine.http1`` builds each request's bytes once (with that client's
own builder) and reads answers with httptools. Requests are still reported through
``events.request``, so Locust's own statistics and CSVs see every one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
import gevent
from gevent.event import Event
from locust import User, task
from locust.exception import StopUser

from replayer.judge.compare import Comparer
from replayer.engine.http1 import Connection
from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp
from replayer.engine.wire import MSG_DONE, MSG_RESULTS

__all__ = ["ReplayUser", "Settings", "replay_connection", "send_step"]

SHIP_EVERY_S = 0.2  # small batches: serializing a big one stalls the pacing for ms


@dataclass(slots=True)
class Settings:
    """What a worker needs besides its steps; set once per worker process."""

    target: str = "http://127.0.0.1"
    worker: int | None = None  # set by the master's config message
    steps: list[Step] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    timeout: float = 30.0
    loop: bool = False
    duration: float | None = None  # stop sending after this many seconds
    span: float = 0.0  # with loop: iteration i is due i * span later
    ramp: Ramp | None = None  # ramp mode: the k-th request is due at ramp.due(k)
    planned: int = 0  # steps in the whole plan (all workers): k = idx + iteration * planned
    stop_at: float | None = None  # set by the master (MSG_STOP): nothing is sent from then on
    t0_wall: float | None = None  # start time (epoch seconds), sent by the master
    started: Event = field(default_factory=Event)
    follow: bool = False  # steps keep arriving (inbox) until ``ended`` is set
    idle_s: float = 60.0  # follow: a replay connection idle this long is closed
    noise: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> learned noisy paths
    keep_bodies: bool = False  # results carry the answer's body (baseline runs)
    ended: Event = field(default_factory=Event)
    finished: bool = False  # this worker sent all its results and said done
    inbox: object = None  # where arriving steps go (set in __post_init__; follow: the live shard)

    def __post_init__(self) -> None:
        self.inbox = self.steps.extend


SETTINGS = Settings()


def make_client(target: str, timeout: float) -> Connection:
    return Connection(target, timeout)


def replay_connection(steps: list[Step], client, t0: float, out: list, *, worker: int,
                      comparer: Comparer, fire=None, loop: bool = False,
                      duration: float | None = None, span: float = 0.0,
                      due_of=None, stop_at=None, clock=time.monotonic) -> None:
    """Send ``steps`` (one captured connection, in order) on ``client``; append one result each.

    ``t0`` is the start on ``clock``; a step is due at ``t0 + step.due (+ iteration * span)``,
    or at ``t0 + due_of(step, iteration)`` when given (ramp mode). ``stop_at()``, when given,
    may return a time (s after ``t0``) from which nothing more is sent.
    """
    def limit() -> float | None:
        stop = stop_at() if stop_at is not None else None
        return duration if stop is None else (stop if duration is None else min(stop, duration))

    prepared = [client.prepare(s) for s in steps]  # each request's bytes, built before the start
    if steps:  # connect shortly before the first request, as the recorded client did: a server
        # with a thread per connection (gunicorn gthread/sync) must not hold idle sockets
        lead = t0 + steps[0].due - PRECONNECT_LEAD_S - clock()
        if lead > 0:
            gevent.sleep(lead)
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
            now = clock()
            if due > now:
                gevent.sleep(due - now)
            sent = clock()
            end = limit()
            if end is not None and sent - t0 >= end:
                return
            prev_done = send_step(s, client, t0, due_rel, prev_done, out, worker=worker,
                                  comparer=comparer, fire=fire, iteration=iteration,
                                  clock=clock, sent=sent, req=req)
        if not loop or not steps:
            return
        iteration += 1
        if span <= 0 and duration is None:
            return


def send_step(s: Step, client, t0: float, due_rel: float, prev_done: float, out: list, *,
              worker: int, comparer: Comparer, fire=None, iteration: int = 0,
              clock=time.monotonic, sent: float | None = None, req=None) -> float:
    """Send one step now on ``client``, append its result to ``out``; returns when it ended.

    ``prev_done`` is when the previous request of this connection was answered (its wait);
    ``req`` is ``client.prepare(s)`` when already built."""
    due = t0 + due_rel
    sent = clock() if sent is None else sent
    wait = max(0.0, prev_done - due)
    status, body, error = 0, b"", None
    if req is None:
        req = client.prepare(s)
    if req[0] is None:  # cannot be sent as recorded (e.g. an invalid header): counted, not sent
        error = req[1]
    else:
        try:
            status, body = client.send(req)
        except Exception as exc:  # any transport failure is a result, never a crash
            error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    done = clock()
    latency_ms = (done - sent) * 1000
    outcome = comparer.compare(s.rec_status, s.rec_body, status, body, s.rec_body_ok,
                               s.endpoint) if error is None else None
    result = (s.idx, worker, due_rel, sent - t0, (sent - due) * 1000, wait * 1000,
              latency_ms, status, error, s.endpoint,
              outcome.status_ok if outcome else False,
              outcome.body_ok if outcome else None,
              list(outcome.diffs) if outcome else [], iteration)
    out.append(result + (body,) if comparer.keep_bodies else result)
    if fire is not None:
        failed = error or (f"HTTP {status}" if status >= 500 else None)
        fire(request_type=s.method, name=s.endpoint, response_time=latency_ms,
             response_length=len(body), exception=Exception(failed) if failed else None,
             context={})
    return done


PRECONNECT_LEAD_S = 0.05  # how long before its first request a connection is opened


def _preconnect(client) -> None:
    """Open the connection before the first due time, so that send is not late by a connect."""
    try:
        client.connect()
    except OSError:
        pass  # the first request connects (and reports the failure) itself


class ReplayUser(User):
    """Replays this worker's shard once (or in a loop), then reports done and stops."""

    wait_time = staticmethod(lambda: 0)
    _claimed = False

    @task
    def replay(self) -> None:
        cfg = SETTINGS
        if ReplayUser._claimed:  # one user per worker replays; an extra one would idle
            raise StopUser()
        ReplayUser._claimed = True
        runner = self.environment.runner
        cfg.started.wait()
        t0 = time.monotonic() + (cfg.t0_wall - time.time())
        out: list = []
        comparer = Comparer(cfg.ignore, cfg.noise, cfg.keep_bodies)
        fire = self.environment.events.request.fire
        shipper = gevent.spawn(_ship, runner, out)
        if cfg.follow:
            failed = _follow(cfg, t0, out, comparer, fire)
        else:
            failed = _replay_shard(cfg, t0, out, comparer, fire)
        shipper.kill()
        _ship_once(runner, out)
        runner.send_message(MSG_DONE, {"worker": cfg.worker, "crashed": failed})
        cfg.finished = True
        raise StopUser()


def _replay_shard(cfg: Settings, t0: float, out: list, comparer: Comparer, fire) -> list[str]:
    by_conn: dict[str, list[Step]] = {}
    for s in cfg.steps:
        by_conn.setdefault(s.conn, []).append(s)
    clients = [make_client(cfg.target, cfg.timeout) for _ in by_conn]
    due_of = None
    if cfg.ramp is not None:
        ramp, planned = cfg.ramp, cfg.planned
        due_of = lambda s, iteration: ramp.due(s.idx + iteration * planned)  # noqa: E731
    conns = [gevent.spawn(replay_connection, steps, client, t0, out, worker=cfg.worker,
                          comparer=comparer, fire=fire, loop=cfg.loop,
                          duration=cfg.duration, span=cfg.span, due_of=due_of,
                          stop_at=lambda: cfg.stop_at)
             for steps, client in zip(by_conn.values(), clients, strict=True)]
    gevent.joinall(conns)
    for c in clients:
        c.close()
    return [repr(g.exception) for g in conns if g.exception is not None]


def _follow(cfg: Settings, t0: float, out: list, comparer: Comparer, fire) -> list[str]:
    from replayer.engine.live import LiveShard

    live = LiveShard(lambda: make_client(cfg.target, cfg.timeout), t0, out, worker=cfg.worker,
                     comparer=comparer, fire=fire, idle_s=cfg.idle_s)
    pending, cfg.steps = cfg.steps, []
    cfg.inbox = live.add  # no yield between these lines: nothing arrives in between
    live.add(pending)
    cfg.ended.wait()
    live.end()
    return live.crashed


def _ship_once(runner, out: list) -> None:
    if out:
        batch = out[:]
        del out[:len(batch)]
        runner.send_message(MSG_RESULTS, batch)


def _ship(runner, out: list) -> None:
    while True:
        gevent.sleep(SHIP_EVERY_S)
        _ship_once(runner, out)
