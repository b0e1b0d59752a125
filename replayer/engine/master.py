"""A distributed replay: a Locust master (this process) and N workers, ``Master(stream, cfg).run()``.

The run goes in phases, one method each: ``_connect`` binds the master and starts N worker
processes on this machine (``replayer.engine.local_workers``) or, with ``cfg.external``, waits
for N workers started elsewhere (``rewind-replay-worker``, Pods in Kubernetes); ``_configure``
gives each its index and settings; ``_start`` tells them one start time and lets Locust spawn
one ``ReplayUser`` per worker; ``_watch`` feeds them and merges what they ship until all
workers said done (or a worker died, or the deadline passed).

There is one way steps flow, whatever the mode: ``Stream.items`` yields (worker, step) pairs as
the range is read (the ``replayer.engine.dealer.Dealer`` over the source, again for each loop
iteration; or over the live stream with ``--follow``), and a ``replayer.engine.feeder.Feeder``
greenlet sends them with a bounded look-ahead. The workers ship summaries
(``replayer.judge.aggregate``), which the master merges into ``RunResult.totals``; nothing is
kept per request. The conversation is ``replayer.engine.wire``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import gevent

from replayer.engine import wire
from replayer.engine.feeder import Feeder
from replayer.engine.live_metrics import LiveMetrics
from replayer.engine.local_workers import LocalWorkers, RunError
from replayer.engine.pacing import GEVENT_CLOCK
from replayer.engine.plan import Step
from replayer.engine.progress import Progress
from replayer.engine.ramp import Ramp
from replayer.judge import sketch
from replayer.judge.aggregate import Totals
from replayer.judge.noise import Noise
from replayer.source.feed import FeedError

__all__ = ["Master", "RunConfig", "RunError", "RunResult", "Stream", "run_stream"]


@dataclass(slots=True)
class RunConfig:
    target: str
    workdir: str
    workers: int = 1
    ignore: list[str] = field(default_factory=list)
    timeout: float = 30.0  # per request
    duration: float | None = None
    timed: bool = True  # every mode but max: steps are due at times, lag means something
    start_delay: float = 0.5  # seconds between "all configured" and t0 (steps are sent before)
    connect_timeout: float = 60.0  # for workers to connect to the master
    progress_every: float = 5.0
    ramp: Ramp | None = None  # ramp mode: results are summed per ramp step too
    # called about every 0.1 s with (totals so far, s since the start); a number it returns is
    # a time (s after the start) from which the workers send nothing more
    monitor: Callable[[Totals, float], float | None] | None = None
    external: bool = False  # wait for workers started elsewhere instead of starting them
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # 0: any free port (local workers only)
    follow: bool = False  # steps come from the live stream until --duration or a stop
    idle_s: float = 60.0  # a replay connection with nothing queued this long is closed
    stop_requested: Callable[[], bool] | None = None  # True: stop sending, finish, report
    log: Callable[..., None] | None = None  # log(event, **fields)
    noise: dict[str, list[str]] | None = None  # endpoint -> noisy paths learned from a baseline
    baseline_pass: int = 0  # --baseline: 1 spills answers on the workers, 2 learns from them
    live_metrics: LiveMetrics | None = None  # --metrics-port: fed with every summary received
    prestarted: LocalWorkers | None = None  # local workers already started for bind_port
    correlate: dict | None = None  # correlation hook: CorrelateSettings.to_wire(); None: off
    values: object = None  # correlation hook: StreamLearning (routes values between workers)


@dataclass(slots=True)
class Stream:
    """Where the steps come from: ``items(t0_wall)`` yields (worker, step) pairs (and None when
    the source pauses); ``planned()`` is the steps expected in all (None: not known yet);
    ``fraction()`` how much of the range was read (0-1, None: unknown), for the ETA."""

    items: Callable[[float], Iterable[tuple[int, Step] | None]]
    planned: Callable[[], int | None] = lambda: None
    fraction: Callable[[], float | None] = lambda: None


@dataclass(slots=True)
class RunResult:
    totals: Totals = field(default_factory=Totals)
    wall_s: float = 0.0
    stats: object = None  # Locust's RequestStats (aggregated from the workers)
    t0: float | None = None  # epoch s of the start (due time 0); target health aligns on it
    noise: Noise | None = None  # --baseline pass 2: what the workers learned
    unsent: int = 0  # steps dealt but not sent (due past --duration or the stop)
    first_request_s: float | None = None  # from the master's start to the first batch sent
    correlation: list[dict] = field(default_factory=list)  # correlation hook: each worker's
    # Correlator.summary() (bounded counters; replayer/judge/correlation_report.py)


def run_stream(stream: Stream, cfg: RunConfig, *,
               progress: Callable[[dict], None] | None = None) -> RunResult:
    """Run ``stream`` with ``cfg``; raises ``RunError`` when the run cannot be carried out."""
    return Master(stream, cfg, progress=progress).run()


class Master:
    """One run of the master. ``run()`` once; the phases share what the workers reported."""

    def __init__(self, stream: Stream, cfg: RunConfig, *,
                 progress: Callable[[dict], None] | None = None) -> None:
        self.stream, self.cfg = stream, cfg
        self.n = cfg.workers
        self.out = RunResult()
        self.out.noise = Noise() if cfg.baseline_pass == 2 else None
        self.progress = Progress(cfg.ramp, stream.planned, stream.fraction, progress)
        self.configured: set[int] = set()
        self.acked: set[int] = set()
        self.done: dict[int, dict] = {}
        self.ids: list[str] = []  # Locust client id of worker i
        self.workers = cfg.prestarted or LocalWorkers(cfg.workdir)
        self.runner = None
        self.feeder: Feeder | None = None
        self.created = time.monotonic()

    def run(self) -> RunResult:
        try:
            self._connect()
            self._configure()
            t0 = self._start()
            self.out.t0 = t0
            self._watch(t0)
            crashed = [c for d in self.done.values() for c in d.get("crashed", [])]
            if crashed:
                raise RunError(f"replay greenlets crashed: {crashed[:3]}")
            self.out.unsent = sum(d.get("unsent", 0) for d in self.done.values())
            self.out.correlation = [d["correlation"] for d in self.done.values()
                                    if d.get("correlation")]  # correlation hook
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
                (wire.MSG_STARTED, lambda d: self.acked.add(d["worker"])),
                (wire.MSG_SUMMARY, self._on_summary),
                (wire.MSG_DONE, lambda d: self.done.__setitem__(d["worker"], d)),
                (wire.MSG_VALUES, self._relay)):  # correlation hook
            runner.register_message(name, lambda msg, _h=handler, **_kw: _h(msg.data))
        if cfg.external:
            if cfg.log:
                cfg.log("replay.waiting_for_workers", workers=self.n, bind=f"{cfg.bind_host}:{port}")
        elif cfg.prestarted is None:
            self.workers.start(self.n, port)
        self._wait_for("not all workers connected", lambda: len(runner.clients.ready) >= self.n,
                       cfg.connect_timeout)
        self.ids = [c.id for c in runner.clients.ready][:self.n]

    def _configure(self) -> None:
        cfg = self.cfg
        settings = wire.settings_to_wire(wire.Settings(
            target=cfg.target, ignore=cfg.ignore, timeout=cfg.timeout, duration=cfg.duration,
            ramp=cfg.ramp, timed=cfg.timed, idle_s=cfg.idle_s, noise=cfg.noise or {},
            baseline_pass=cfg.baseline_pass, spill_dir=cfg.workdir if cfg.baseline_pass else "",
            correlate=cfg.correlate))
        if cfg.values is not None:  # correlation hook: values to the workers that need them
            cfg.values.send = lambda w, d: self.runner.send_message(wire.MSG_VALUES, d,
                                                                     self.ids[w])

        def send_config() -> None:
            for w, cid in enumerate(self.ids):
                if w not in self.configured:
                    self.runner.send_message(wire.MSG_CONFIG, {"worker": w, "settings": settings},
                                             cid)
        self._wait_for("not all workers took their settings",
                       lambda: len(self.configured) >= self.n, 30, repeat=send_config)

    def _start(self) -> float:
        """Agree on the start time (epoch s) with every worker, spawn the users; returns it."""
        t0 = time.time() + self.cfg.start_delay

        def send_start() -> None:  # repeated: a worker may not listen for it yet
            if time.time() > t0 + 5:
                raise RunError(f"only {len(self.acked)} of {self.n} workers took the start time "
                               "in time")
            self.runner.send_message(wire.MSG_START, {"t0": t0})
        self._wait_for("start", lambda: len(self.acked) >= self.n, self.cfg.start_delay + 6,
                       repeat=send_start)
        self.runner.start(self.n, spawn_rate=max(self.n, 100))
        return t0

    def _watch(self, t0: float) -> None:
        """Feed the workers until the stream ends; end the run; pass on a stop; log progress."""
        cfg, runner = self.cfg, self.runner
        t0_mono = time.monotonic() + (t0 - time.time())
        self.feeder = feeder = Feeder(
            self.stream.items(t0), self._send, self.n, t0=t0_mono, timed=cfg.timed,
            time_limit=cfg.duration, clock=GEVENT_CLOCK)
        feeding = gevent.spawn(feeder.run)
        deadline = None
        last_sent = -1
        stopped = ended = False
        while len(self.done) < self.n:
            runner.greenlet.join(0.1)
            self._check()
            if feeding.dead and feeding.exception is not None:
                if isinstance(feeding.exception, FeedError):
                    raise feeding.exception  # the source broke mid-run: its own exit code
                raise RunError(f"dealing the range failed: {feeding.exception!r}")
            elapsed = time.time() - t0
            want_stop = cfg.stop_requested is not None and cfg.stop_requested()
            if cfg.follow and cfg.duration is not None and elapsed >= cfg.duration:
                want_stop = True
            if not stopped:
                stop = cfg.monitor(self.out.totals, elapsed) if cfg.monitor is not None else None
                if stop is None and want_stop:
                    stop = max(0.0, elapsed)
                if stop is not None:
                    runner.send_message(wire.MSG_STOP, {"at": stop})
                    feeder.stop()
                    stopped = True
            if not ended and feeding.dead:
                if feeder.first_sent_at is not None and self.out.first_request_s is None:
                    self.out.first_request_s = round(feeder.first_sent_at - self.created, 3)
                runner.send_message(wire.MSG_END, {})
                ended = True
            if ended and self.out.totals.sent != last_sent:  # the workers still make progress
                last_sent = self.out.totals.sent  # (requests waiting for values, up to the
                deadline = time.monotonic() + cfg.timeout + 60 + self._wait_s()  # wait each)
            if self.out.first_request_s is None and feeder.first_sent_at is not None:
                self.out.first_request_s = round(feeder.first_sent_at - self.created, 3)
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise RunError(f"the run overran its deadline; {len(self.done)} of {self.n} "
                               "workers done")
            if elapsed >= 0:
                self.progress.tick(self.out.totals, elapsed, now, cfg.progress_every)
            if cfg.live_metrics is not None:  # live-metrics hook: requests sent, of how many
                cfg.live_metrics.progress(self.out.totals.sent, self.stream.planned())

    def _send(self, w: int, steps: list[Step]) -> None:
        wire.send_steps(self.runner, self.ids[w], steps)

    def _on_summary(self, data: dict) -> None:
        if self.feeder is not None:
            self.feeder.add_finished(data["worker"], data["finished"])
        cells = self.out.totals.merge(data)
        lm = self.cfg.live_metrics
        if lm is not None:  # live-metrics hook: one add per received summary
            for ep, s in cells:
                lag = sketch.maximum(s.lag)
                lm.add(ep, requests=s.count, errors=s.errors, bucket_counts=s.buckets,
                       latency_sum=s.latency_sum, lag_seconds=None if lag is None else lag / 1000)
        if data.get("noise") and self.out.noise is not None:
            self.out.noise.merge_wire(data["noise"])

    # -- helpers -------------------------------------------------------------------------------
    def _wait_s(self) -> float:
        """The longest a request may wait for a value (correlation hook: --correlate-wait)."""
        return float((self.cfg.correlate or {}).get("wait_s", 0.0))

    def _relay(self, d: dict) -> None:
        """Correlation: one worker's values, passed on by ``cfg.values`` (StreamLearning)."""
        if self.cfg.values is not None:
            self.cfg.values.relayed(d)

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
