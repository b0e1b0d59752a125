"""The phases of one ``rewind-replay`` run before judging, in order: ``read_source``,
``make_plan``, ``check_targets``, ``run``. Each takes the ``Options`` and raises a typed error
that the command turns into its exit code (``replayer.replay.cli``): ``FeedError`` /
``SourceUnreachable`` (reading), ``NothingToReplay``, ``TargetUnreachable``, ``RunError``.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from replayer.engine.follow import Follower, open_follower
from replayer.engine.live_metrics import served
from replayer.engine.master import RunConfig, RunError, RunResult, run_plan
from replayer.engine.plan import Plan, build_plan
from replayer.engine.ramp import RampMonitor
from replayer.judge.noise import Noise, learn_from_baseline
from replayer.replay.options import Options
from replayer.source.feed import open_feed
from replayer.watch import Watcher
from sidecar.contract.record import Record

__all__ = ["Input", "NothingToReplay", "Run", "TargetUnreachable", "check_targets", "make_plan",
           "read_source", "run"]


class NothingToReplay(Exception):
    """The range holds no request to send (empty, or every record filtered out)."""


class TargetUnreachable(Exception):
    """--target (or --baseline) does not accept a TCP connection."""


@dataclass(slots=True)
class Input:
    records: list[Record]  # the range, in capture order (empty with --follow)
    follower: Follower | None = None  # --follow: the live stream's reader


@dataclass(slots=True)
class Run:
    out: RunResult
    started: str  # ISO-8601, UTC
    noise: Noise | None = None  # --baseline: what was learned
    monitor: RampMonitor | None = None  # ramp mode: the steps' verdicts
    health: dict | None = None  # --watch*: the watched series (replayer.watch.Watcher.stop)


def read_source(opts: Options, log) -> Input:
    if opts.follow:
        return Input([], open_follower(opts.source, opts.stream, opts.rules, opts.workers,
                                       from_ns=opts.window.start_ns, from_id=opts.window.start_id,
                                       log=log.warning))
    return Input(open_feed(opts.source, stream=opts.stream, window=opts.window))


def make_plan(opts: Options, src: Input) -> Plan:
    if src.follower is not None:  # steps are dealt as they arrive
        return Plan([[] for _ in range(opts.workers)])
    plan = build_plan(src.records, opts.rules, opts.schedule, opts.workers)
    if plan.steps == 0:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(plan.skipped.items()))
        raise NothingToReplay(f"nothing to replay: the range holds {len(src.records)} records"
                              + (f", all skipped ({skipped})" if plan.skipped else "")
                              + "; check --source, --stream, --from/--to and the filters")
    return plan


def check_targets(opts: Options) -> None:
    for url in (opts.target, opts.baseline) if opts.baseline else (opts.target,):
        t = urlsplit(url)
        try:
            socket.create_connection(
                (t.hostname, t.port or (443 if t.scheme == "https" else 80)), timeout=5).close()
        except OSError as exc:
            raise TargetUnreachable(f"target {url} is unreachable: {exc.strerror or exc}") from None


def run(opts: Options, plan: Plan, src: Input, log, *,
        progress: Callable[[dict], None] | None = None,
        stop_requested: Callable[[], bool] | None = None) -> Run:
    """Replay ``plan`` (twice against --baseline first, to learn noise); raises ``RunError``."""
    monitor = None
    if opts.ramp is not None:
        monitor = RampMonitor(opts.ramp, opts.objectives, log=log.info)
        log.info("replay.ramp", rates=list(opts.ramp.rates), step_s=opts.ramp.step_s,
                 slo=opts.slo, planned=opts.ramp.total, judge_after_s=round(monitor.grace, 2))
    with tempfile.TemporaryDirectory(prefix="rewind-replay-") as work:
        cfg = RunConfig(target=opts.target, workdir=work, ignore=opts.ignore,
                        timeout=opts.timeout, loop=opts.loop or opts.ramp is not None,
                        duration=opts.duration, progress_every=opts.progress_every,
                        ramp=opts.ramp, monitor=monitor.tick if monitor else None,
                        follow=src.follower, external=opts.external, bind_host=opts.bind_host,
                        bind_port=opts.bind_port, connect_timeout=opts.connect_timeout,
                        stop_requested=stop_requested, log=log.info)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        noise = health = out = None
        try:  # issue 13: the metrics port is bound before any request is sent
            metrics = served(opts.metrics_port, opts.metrics_addr, opts.metrics_linger, log.info)
        except OSError as exc:
            raise RunError(f"--metrics-port {opts.metrics_port}: {exc.strerror or exc}") from None
        with metrics as live:
            if opts.baseline:
                noise = learn_from_baseline(opts.baseline, lambda target: run_plan(plan, replace(
                    cfg, target=target, keep_bodies=True), progress=progress).results, log.info)
                cfg.noise = noise.paths
            # live metrics and target health (issue 13): the run against --target only
            cfg.live_metrics = live
            watcher = Watcher(opts.watch, log=log.warning).start() if opts.watch else None
            try:
                out = run_plan(plan, cfg, progress=progress)
            finally:
                if watcher is not None:
                    health = watcher.stop(out.t0 if out is not None else None)
    return Run(out=out, started=started, noise=noise, monitor=monitor, health=health)
