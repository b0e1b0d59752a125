"""A distributed replay: a Locust master (this process) and N workers, ``Master(plan, cfg).run()``.

The run goes in phases, one method each: ``_connect`` binds the master and starts N worker
processes on this machine (``replayer.engine.local_workers``) or, with ``cfg.external``, waits
for N workers started elsewhere (``rewind-replay-worker``, Pods in Kubernetes); ``_configure``
gives each its index and settings; ``_load`` sends each its share of the plan; ``_start`` tells
them one start time and lets Locust spawn one ``ReplayUser`` per worker; ``_watch`` gathers
every result they send until all workers said done (or a worker died, or the deadline passed).
The conversation is ``replayer.engine.wire``. With ``cfg.follow`` (a
``replayer.engine.follow.Follower``) there is no plan: steps are read from the live stream and
sent to the workers as they arrive, until ``--duration`` or a stop request (SIGINT/SIGTERM).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent

from replayer.engine import wire
from replayer.engine.live_metrics import LiveMetrics, feed_results
from replayer.engine.local_workers import LocalWorkers, RunError
from replayer.engine.plan import Plan
from replayer.engine.progress import snapshot
from replayer.engine.ramp import Ramp
from replayer.judge.result import Result

__all__ = ["Master", "RunConfig", "RunError", "RunResult", "run_plan"]


@dataclass(slots=True)
class RunConfig:
    target: str
    workdir: str
    ignore: list[str] = field(default_factory=list)
    timeout: float = 30.0  # per request
    loop: bool = False
    duration: float | None = None
    start_delay: float = 2.0  # seconds between "all connected" and the first due time
    connect_timeout: float = 60.0  # for workers to connect to the master
    progress_every: float = 5.0
    ramp: Ramp | None = None  # ramp mode: due times come from the ramp (see replayer/engine/ramp.py)
    # called about every 0.1 s with (results so far, s since the start); a number it returns is
    # a time (s after the start) from which the workers send nothing more
    monitor: Callable[[list[Result], float], float | None] | None = None
    external: bool = False  # wait for workers started elsewhere instead of starting them
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # 0: any free port (local workers only)
    follow: object = None  # a replayer.engine.follow.Follower: steps come from the live stream
    idle_s: float = 60.0  # follow: a replay connection idle this long is closed
    stop_requested: Callable[[], bool] | None = None  # True: stop sending, finish, report
    log: Callable[..., None] | None = None  # log(event, **fields)
    noise: dict[str, list[str]] | None = None  # endpoint -> noisy paths learned from a baseline
    keep_bodies: bool = False  # results carry the answer's body (baseline runs)
    live_metrics: LiveMetrics | None = None  # --metrics-port: fed with every result received


@dataclass(slots=True)
class RunResult:
    results: list[Result] = field(default_factory=list)
    wall_s: float = 0.0
    stats: object = None  # Locust's RequestStats (aggregated from the workers)
    t0: float | None = None  # epoch s of the start (due time 0); target health aligns on it


def run_plan(plan: Plan, cfg: RunConfig, *, progress: Callable[[dict], None] | None = None
             ) -> RunResult:
    """Run ``plan`` with ``cfg``; raises ``RunError`` when the run cannot be carried out."""
    return Master(plan, cfg, progress=progress).run()


class Master:
    """One run of the master. ``run()`` once; the phases share what the workers reported."""

    def __init__(self, plan: Plan, cfg: RunConfig, *,
                 progress: Callable[[dict], None] | None = None) -> None:
        self.plan, self.cfg, self.progress = plan, cfg, progress
        self.n = len(plan.shards)
        self.out = RunResult()
        self.configured: set[int] = set()
        self.loaded: dict[int, int] = {}
        self.acked: set[int] = set()
        self.done: dict[int, dict] = {}
        self.ids: list[str] = []  # Locust client id of worker i
        self.workers = LocalWorkers(cfg.workdir)
        self.runner = None

    def run(self) -> RunResult:
        try:
            self._connect()
            self._configure()
            if self.cfg.follow is None:
                self._load()
            t0 = self._start()
            self.out.t0 = t0
            self._watch(t0)
            crashed = [c for d in self.done.values() for c in d.get("crashed", [])]
            if crashed:
                raise RunError(f"replay greenlets crashed: {crashed[:3]}")
            self.out.wall_s = time.time() - t0
            self.runner.greenlet.join(0.5)  # let the workers' last stats reports arrive
            return self.out
        finally:
            if self.runner is not None:
                self.runner.quit()
            self.workers.wait()

    # -- phases --------------------------------------------------------------------------------
    def _connect(self) -> None:
        from locust.env import Environment

        from replayer.engine.user import ReplayUser

        cfg = self.cfg
        env = Environment(user_classes=[ReplayUser])
        port = cfg.bind_port or _free_port(cfg.bind_host)
        self.runner = runner = env.create_master_runner(cfg.bind_host, port)
        self.out.stats = env.stats
        for name, handler in (
                (wire.MSG_CONFIGURED, lambda d: self.configured.add(d["worker"])),
                (wire.MSG_LOADED, lambda d: self.loaded.__setitem__(d["worker"], d["count"])),
                (wire.MSG_STARTED, lambda d: self.acked.add(d["worker"])),
                (wire.MSG_RESULTS, self._received),
                (wire.MSG_DONE, lambda d: self.done.__setitem__(d["worker"], d))):
            runner.register_message(name, lambda msg, _h=handler, **_kw: _h(msg.data))
        if cfg.external:
            if cfg.log:
                cfg.log("replay.waiting_for_workers", workers=self.n, bind=f"{cfg.bind_host}:{port}")
        else:
            self.workers.start(self.n, port)
        self._wait_for("not all workers connected", lambda: len(runner.clients.ready) >= self.n,
                       cfg.connect_timeout)
        self.ids = [c.id for c in runner.clients.ready][:self.n]

    def _configure(self) -> None:
        cfg, plan = self.cfg, self.plan
        settings = wire.settings_to_wire(wire.Settings(
            target=cfg.target, ignore=cfg.ignore, timeout=cfg.timeout, loop=cfg.loop,
            duration=cfg.duration, span=plan.span, ramp=cfg.ramp, planned=plan.steps,
            follow=cfg.follow is not None, idle_s=cfg.idle_s, noise=cfg.noise or {},
            keep_bodies=cfg.keep_bodies))

        def send_config() -> None:
            for w, cid in enumerate(self.ids):
                if w not in self.configured:
                    self.runner.send_message(wire.MSG_CONFIG, {"worker": w, "settings": settings},
                                             cid)
        self._wait_for("not all workers took their settings",
                       lambda: len(self.configured) >= self.n, 30, repeat=send_config)

    def _load(self) -> None:
        shards = self.plan.shards
        for w, cid in enumerate(self.ids):
            wire.send_steps(self.runner, cid, shards[w])
            self.runner.send_message(wire.MSG_LOAD_END, {"count": len(shards[w])}, cid)
        self._wait_for("not all workers received their share", lambda: len(self.loaded) >= self.n,
                       60 + self.plan.steps / 2000)
        wrong = {w: c for w, c in self.loaded.items() if c != len(shards[w])}
        if wrong:
            raise RunError(f"workers received other step counts than sent: {wrong}")

    def _start(self) -> float:
        """Agree on the start time (epoch s) with every worker, spawn the users; returns it."""
        t0 = time.time() + self.cfg.start_delay

        def send_start() -> None:  # repeated: a worker may not listen for it yet
            if time.time() > t0 - 0.2:
                raise RunError(f"only {len(self.acked)} of {self.n} workers took the start time "
                               "in time")
            self.runner.send_message(wire.MSG_START, {"t0": t0})
        self._wait_for("start", lambda: len(self.acked) >= self.n, self.cfg.start_delay + 1,
                       repeat=send_start)
        self.runner.start(self.n, spawn_rate=max(self.n, 100))
        return t0

    def _watch(self, t0: float) -> None:
        """Until every worker said done: end a follow run, pass on a stop, log progress."""
        cfg, runner = self.cfg, self.runner
        follower = None
        if cfg.follow is not None:
            gevent.sleep(max(0.0, t0 - time.time()))
            follower = gevent.spawn(cfg.follow.run, lambda w, steps: wire.send_steps(
                runner, self.ids[w], steps), t0)
        last_due = cfg.duration if cfg.duration is not None else self.plan.span
        deadline = None if follower else time.monotonic() + cfg.start_delay + last_due + cfg.timeout + 60
        next_progress = time.monotonic() + cfg.progress_every
        seen = 0
        stopped = False
        while len(self.done) < self.n:
            runner.greenlet.join(0.1)
            self._check()
            elapsed = time.time() - t0
            want_stop = cfg.stop_requested is not None and cfg.stop_requested()
            if follower is not None and deadline is None and (
                    want_stop or follower.dead
                    or (cfg.duration is not None and elapsed >= cfg.duration)):
                self._end_follow(follower)
                deadline = time.monotonic() + cfg.timeout + 60
            if not stopped and follower is None:
                stop = cfg.monitor(self.out.results, elapsed) if cfg.monitor is not None else None
                if stop is None and want_stop:
                    stop = max(0.0, elapsed)
                if stop is not None:
                    runner.send_message(wire.MSG_STOP, {"at": stop})
                    stopped = True
                    deadline = min(deadline, time.monotonic() + cfg.timeout + 30)
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise RunError(f"the run overran its deadline; {len(self.done)} of {self.n} "
                               "workers done")
            if self.progress and now >= next_progress and elapsed >= 0:
                self.progress(snapshot(self.out.results, seen, elapsed, cfg.progress_every,
                                       cfg.ramp))
                seen = len(self.out.results)
                next_progress = now + cfg.progress_every

    def _received(self, batch: list) -> None:
        results = wire.results_from_wire(batch)
        self.out.results.extend(results)
        cfg = self.cfg
        planned = cfg.ramp.total if cfg.ramp else (
            None if cfg.loop or cfg.follow is not None else self.plan.steps)
        feed_results(cfg.live_metrics, results, len(self.out.results), planned)  # live-metrics hook

    def _end_follow(self, follower) -> None:
        self.cfg.follow.stop()
        follower.join()
        if follower.exception is not None:
            raise RunError(f"reading the live stream failed: {follower.exception!r}")
        self.runner.send_message(wire.MSG_END, {})

    # -- helpers -------------------------------------------------------------------------------
    def _check(self) -> None:
        from locust.runners import STATE_MISSING

        self.workers.check()
        for w, cid in enumerate(self.ids):
            node = self.runner.clients.get(cid)
            if node is None or node.state == STATE_MISSING:
                raise RunError(f"worker {w} ({cid}) went away (quit, or no heartbeat)")

    def _wait_for(self, what: str, ok: Callable[[], bool], timeout: float, repeat=None) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if repeat is not None:
                repeat()
            self.runner.greenlet.join(0.1)
            self._check()
            if time.monotonic() > deadline:
                raise RunError(f"{what} within {timeout:.0f} s")
            if self.cfg.stop_requested is not None and self.cfg.stop_requested():
                raise RunError("stopped (signal) before the run started")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
