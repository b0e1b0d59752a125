"""The phases of one ``rewind-replay`` run before judging, in order: ``read_source``,
``check_targets``, ``run``. Each takes the ``Options`` and raises a typed error that the command
turns into its exit code (``replayer.replay.cli``): ``FeedError`` / ``SourceUnreachable``
(reading, before the run or during it), ``NothingToReplay``, ``TargetUnreachable``,
``RunError``.

Nothing here holds the range: ``read_source`` opens it and reads only up to its first request
that the rules let through (to fail early on an empty range or a bad source); ``run`` streams it
through a ``replayer.engine.dealer.Dealer`` to the master (``replayer.engine.master``), which
deals it to the workers as it reads.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from replayer.engine.correlation import CorrelateSettings, StreamLearning
from replayer.engine.dealer import Dealer
from replayer.engine.follow import Follower, open_follower
from replayer.engine.live_metrics import served
from replayer.engine.local_workers import LocalWorkers
from replayer.engine.master import RunConfig, RunError, RunResult, Stream, run_stream
from replayer.engine.plan import endpoint_name
from replayer.engine.ramp import RampMonitor
from replayer.engine.rewrite import Request
from replayer.judge.noise import Noise, learn_from_baseline
from replayer.replay.options import Options
from replayer.source.feed import Feed
from replayer.watch import Watcher

__all__ = ["Input", "NothingToReplay", "Run", "TargetUnreachable", "check_targets",
           "read_source", "run"]


class NothingToReplay(Exception):
    """The range holds no request to send (empty, or every record filtered out)."""


class TargetUnreachable(Exception):
    """--target (or --baseline) does not accept a TCP connection."""


@dataclass(slots=True)
class Input:
    feed: Feed | None = None  # the range (None with --follow)
    follower: Follower | None = None  # --follow: the live stream's reader
    first_ns: int = 0  # capture time of the range's first record (--shift-time's origin)


@dataclass(slots=True)
class Run:
    out: RunResult
    started: str  # ISO-8601, UTC
    dealer: Dealer  # what was read and dealt: records, steps, connections, skipped
    noise: Noise | None = None  # --baseline: what was learned
    monitor: RampMonitor | None = None  # ramp mode: the steps' verdicts
    health: dict | None = None  # --watch*: the watched series (replayer.watch.Watcher.stop)
    learning: StreamLearning | None = None  # correlation hook: what the master learned


def read_source(opts: Options, log) -> Input:
    if opts.follow:
        return Input(follower=open_follower(opts.source, opts.stream,
                                            from_ns=opts.window.start_ns,
                                            from_id=opts.window.start_id, log=log.warning))
    feed = Feed(opts.source, stream=opts.stream, window=opts.window)
    records, skipped = 0, {}
    rules = replace(opts.rules, credentials=None)  # the same filters; counts nothing
    first_ns = None
    for r in feed.records():  # up to the first record that would be sent
        records += 1
        if first_ns is None:
            first_ns = r.ts_ns
        req = rules.apply(r)
        if isinstance(req, Request):
            return Input(feed=feed, first_ns=first_ns)
        skipped[req] = skipped.get(req, 0) + 1
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
    raise NothingToReplay(f"nothing to replay: the range holds {records} records"
                          + (f", all skipped ({detail})" if skipped else "")
                          + "; check --source, --stream, --from/--to and the filters")


def check_targets(opts: Options) -> None:
    for url in (opts.target, opts.baseline) if opts.baseline else (opts.target,):
        t = urlsplit(url)
        try:
            socket.create_connection(
                (t.hostname, t.port or (443 if t.scheme == "https" else 80)), timeout=5).close()
        except OSError as exc:
            raise TargetUnreachable(f"target {url} is unreachable: {exc.strerror or exc}") from None


def _dealer(opts: Options, learn: StreamLearning | None = None) -> Dealer:
    return Dealer(opts.rules, opts.schedule, opts.workers, ramp=opts.ramp,
                  loop=opts.loop or opts.ramp is not None,
                  due_limit=opts.duration if opts.mode != "max" else None,
                  time_limited=opts.duration is not None, learn=learn)


def _correlate(opts: Options, src: Input) -> tuple[StreamLearning | None, dict | None]:
    """The master's learner (None: --no-correlate or --follow, which learns nothing) and what
    the workers' Correlators are told (None: nothing to do; --follow still shifts times and
    re-signs JWTs when asked)."""
    learning = None
    if opts.correlate and src.follower is None:
        learning = StreamLearning(endpoint_name)
    if learning is None and not (opts.shift_time or opts.jwt_key_file or opts.jwt_key_env):
        return None, None
    return learning, CorrelateSettings(
        wait_s=opts.correlate_wait, shift_time=opts.shift_time, first_ns=src.first_ns,
        jwt_key_file=opts.jwt_key_file, jwt_key_env=opts.jwt_key_env,
        relay_all=opts.workers > 1).to_wire()


def _stream(opts: Options, src: Input, dealer: Dealer) -> Stream:
    if src.follower is not None:
        follower = src.follower

        def follow_items(t0_wall: float):
            for item in follower.records(t0_wall):
                yield None if item is None else dealer.deal(*item)
        return Stream(items=follow_items)

    def items(_t0_wall: float):
        return dealer.passes(src.feed.records)

    def planned() -> int | None:
        if opts.ramp is not None:
            return opts.ramp.total
        if dealer.first_pass_done and not dealer.loop:
            return dealer.planned
        return None

    def fraction() -> float | None:
        if opts.duration is not None and (opts.loop or opts.ramp is not None):
            return None  # the Progress line's elapsed / duration is the measure then
        return src.feed.fraction()
    return Stream(items=items, planned=planned, fraction=fraction)


def run(opts: Options, src: Input, log, *, workdir: str,
        progress: Callable[[dict], None] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        prestarted: tuple[LocalWorkers, int] | None = None) -> Run:
    """Replay the range (twice against --baseline first, to learn noise); raises ``RunError``.
    ``prestarted``: local workers already started for a master on that port (the first run
    takes them)."""
    monitor = None
    if opts.ramp is not None:
        monitor = RampMonitor(opts.ramp, opts.objectives, log=log.info)
        log.info("replay.ramp", rates=list(opts.ramp.rates), step_s=opts.ramp.step_s,
                 slo=opts.slo, planned=opts.ramp.total, judge_after_s=round(monitor.grace, 2))
    early = [prestarted] if prestarted else []

    def first(cfg: RunConfig) -> RunConfig:  # the prestarted workers go to the first run
        if not early:
            return cfg
        workers, port = early.pop()
        return replace(cfg, prestarted=workers, bind_port=port)
    cfg = RunConfig(target=opts.target, workdir=workdir, workers=opts.workers,
                    ignore=opts.ignore, timeout=opts.timeout, duration=opts.duration,
                    timed=opts.mode != "max" or opts.follow,
                    progress_every=opts.progress_every, ramp=opts.ramp,
                    monitor=monitor.tick if monitor else None, follow=opts.follow,
                    external=opts.external, bind_host=opts.bind_host,
                    bind_port=opts.bind_port, connect_timeout=opts.connect_timeout,
                    stop_requested=stop_requested, log=log.info)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    noise = health = out = None
    try:  # the metrics port is bound before any request is sent
        metrics = served(opts.metrics_port, opts.metrics_addr, opts.metrics_linger, log.info)
    except OSError as exc:
        raise RunError(f"--metrics-port {opts.metrics_port}: {exc.strerror or exc}") from None
    with metrics as live:
        if opts.baseline:
            def baseline_run(target: str, n: int) -> Noise | None:
                d = _dealer(opts)
                return run_stream(_stream(opts, src, d), first(replace(
                    cfg, target=target, baseline_pass=n, monitor=None)),
                    progress=progress).noise
            noise = learn_from_baseline(opts.baseline, baseline_run, log.info)
            cfg.noise = noise.paths
        # live metrics and target health: the run against --target only
        cfg.live_metrics = live
        learning, cfg.correlate = _correlate(opts, src)  # correlation hook
        cfg.values = learning
        dealer = _dealer(opts, learning)
        watcher = Watcher(opts.watch, log=log.warning).start() if opts.watch else None
        try:
            out = run_stream(_stream(opts, src, dealer), first(cfg), progress=progress)
        finally:
            if watcher is not None:
                health = watcher.stop(out.t0 if out is not None else None)
    return Run(out=out, started=started, dealer=dealer, noise=noise, monitor=monitor,
               health=health, learning=learning)
