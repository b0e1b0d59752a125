"""``rewind-replay``: replay a captured range against a target with Locust, report, and judge.

``main`` runs the phases in order, each in its own function: ``options.parse`` (the flags,
checked together), ``phases.read_source``, ``phases.check_targets``, ``phases.run``,
``judging.judge`` and ``judging.report``. A phase that cannot go on raises an error of its own
type, and ``main`` turns the type into the exit code (``ReplayExit``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile

from replayer.replay.options import Options, parse
from sidecar.contract.exit_codes import ReplayExit

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    workdir = tempfile.mkdtemp(prefix="rewind-replay-")
    early = _prestart(opts, workdir)  # before the imports below: the two start-ups overlap
    try:
        return _main(opts, workdir, early)
    finally:
        if early is not None:
            early[0].stop()  # still running only when the run never began
        shutil.rmtree(workdir, ignore_errors=True)


def _prestart(opts: Options, workdir: str):
    """Start the local workers now, for a master on a port chosen now: (workers, port)."""
    if opts.external:
        return None
    import socket

    from replayer.engine.local_workers import LocalWorkers

    port = opts.bind_port
    if not port:
        with socket.socket() as s:
            s.bind((opts.bind_host, 0))
            port = s.getsockname()[1]
    workers = LocalWorkers(workdir)
    workers.start(opts.workers, port)
    return workers, port


def _main(opts: Options, workdir: str, early) -> int:
    from gevent import monkey

    monkey.patch_all()  # before redis/ssl are imported: Locust runs on gevent

    import structlog

    from replayer.engine.master import RunError
    from replayer.replay import judging, phases
    from replayer.source.feed import FeedError, SourceUnreachable
    from sidecar.common import logs

    logs.configure_from(opts.log_level, opts.log_format)
    log = structlog.get_logger("rewind.replay")
    try:
        src = phases.read_source(opts, log)
        phases.check_targets(opts)
        _log_start(opts, src, log)
        progress = _progress_printer(log, opts.log_format)
        try:
            run = phases.run(opts, src, log, workdir=workdir, prestarted=early, progress=progress,
                             stop_requested=_stop_on_signals(log))
        finally:
            if getattr(progress, "drew", False):
                sys.stderr.write("\n")
    except SourceUnreachable as exc:
        return _fail(ReplayExit.SOURCE, exc)
    except (FeedError, phases.NothingToReplay) as exc:
        return _fail(ReplayExit.USAGE, exc)
    except phases.TargetUnreachable as exc:
        return _fail(ReplayExit.TARGET, exc)
    except RunError as exc:
        log.error("replay.failed", error=str(exc))
        return ReplayExit.RUN
    summary, code = judging.judge(opts, src, run, log)
    judging.report(opts, summary, run, code, log)
    return code


def _fail(code: ReplayExit, exc: Exception) -> ReplayExit:
    print(f"rewind-replay: {exc}", file=sys.stderr)
    return code


def _log_start(opts: Options, src, log) -> None:
    if src.follower is not None:
        log.info("replay.follow", stream=opts.stream, after_id=src.follower.after_id,
                 workers=opts.workers, duration_s=opts.duration)
    else:
        log.info("replay.stream", source=opts.source, workers=opts.workers, mode=opts.mode,
                 loop=opts.loop, duration_s=opts.duration)


def _progress_printer(log, log_format: str):
    """replay.progress log lines; on a terminal (console logs) one line redrawn in place."""
    if log_format == "json" or not sys.stderr.isatty():
        return lambda snap: log.info("replay.progress", **snap)

    def redraw(snap: dict) -> None:
        lag = snap["lag_p99_ms"]
        line = (f"{snap['elapsed_s']:>7.1f} s  sent {snap['sent']:>9,}  {snap['rps']:>8,.1f} req/s  "
                f"errors {snap['errors']:,}  lag p99 {'-' if lag is None else f'{lag:.1f} ms'}")
        if snap.get("eta_s") is not None:
            line += f"  ETA {snap['eta_s']:,.0f} s"
        if "ramp_step" in snap:
            line += f"  ramp step {snap['ramp_step']} ({snap['ramp_rps']:g}/s)"
        sys.stderr.write("\r\x1b[K" + line)
        sys.stderr.flush()
        redraw.drew = True  # the caller ends the line before logging on
    return redraw


def _stop_on_signals(log):
    """SIGINT/SIGTERM end the run in order (report written); returns 'was one received?'."""
    import signal

    import gevent

    got: list[int] = []

    def on_signal(signum: int) -> None:
        if not got:
            log.warning("replay.stopping", signal=signal.Signals(signum).name)
        got.append(signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, on_signal, sig)
    return lambda: bool(got)


if __name__ == "__main__":
    sys.exit(main())
