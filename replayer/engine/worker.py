"""``rewind-replay-worker``: one replay worker, connected to a ``rewind-replay`` master.

The master (``rewind-replay``) starts these itself (``--workers N``, processes on its machine) or
waits for N of them started elsewhere (``--external-workers N``: Pods of a Kubernetes Job). Either
way a worker knows only where the master is; everything else arrives over Locust messages
(``replayer.engine.wire``): its index and settings, the start time, its share of the steps in
batches as the master reads the range (or the live stream), stop and end.
``serve_worker`` answers them into the run's ``RunState`` (``environment.rewind``), which the
``ReplayUser`` reads. It replays, sends its results back, and exits when the master ends the run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import TYPE_CHECKING

from replayer.engine import wire
from sidecar.common import cli_args as a
from sidecar.common import logs
from sidecar.contract.exit_codes import WorkerExit

if TYPE_CHECKING:  # imported in main, after gevent's monkey-patching
    from replayer.engine.state import RunState

__all__ = ["build_parser", "main", "serve_worker"]

EXIT_HELP = {
    WorkerExit.OK: "this worker's share was replayed and sent, and the master ended the run",
    WorkerExit.USAGE: "bad arguments",
    WorkerExit.NO_MASTER: "no master answered at --master-host:--master-port within "
                          "--connect-timeout",
    WorkerExit.MASTER_GONE: "the master went away (quit, or no heartbeat for 60 s) before this "
                            "worker had sent all its results (the run was aborted; the master "
                            "reports it)",
}

EPILOG = """\
examples:
  rewind-replay-worker --master-host rewind-master --master-port 5557
  REWIND_MASTER_HOST=10.0.0.5 REWIND_MASTER_PORT=5557 rewind-replay-worker

""" + a.exit_codes_help(EXIT_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-replay-worker",
        description="A rewind replay worker: connects to a rewind-replay master (started with "
        "--external-workers N), receives its share of the replay over Locust messages, replays "
        "it against the master's --target and sends the results back.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add(p, "--master-host", required=True, help="host name or address of the master")
    a.add(p, "--master-port", type=a.port, default=5557,
          help="the master's --master-bind-port")
    a.add(p, "--connect-timeout", type=a.duration, default="5m",
          help="how long to keep trying to reach the master")
    logs.add_arguments(p)
    return p


def serve_worker(runner, state: RunState, log) -> None:
    """Register the worker's side of the conversation (``replayer.engine.wire``) on a Locust
    WorkerRunner; what arrives goes into ``state``."""

    def on_config(msg, **_kw) -> None:
        data = msg.data
        if state.worker is None:
            state.settings = wire.settings_from_wire(data["settings"])
            state.worker = data["worker"]
            if state.settings.correlate is not None:  # correlation hook
                from replayer.engine.correlation import CorrelateSettings, build_correlator
                from replayer.engine.correlation.relaying import Announcer

                state.correlation = build_correlator(
                    CorrelateSettings.from_wire(state.settings.correlate),
                    relay=Announcer(lambda d: runner.send_message(wire.MSG_VALUES, d),
                                    state.worker))
            log.info("replay.worker.configured", worker=state.worker,
                     target=state.settings.target)
        runner.send_message(wire.MSG_CONFIGURED, {"worker": state.worker})

    def on_steps(msg, **_kw) -> None:
        state.add_steps([wire.step_from_wire(v) for v in msg.data["steps"]])

    def on_start(msg, **_kw) -> None:
        if state.t0_wall is None:  # repeated by the master; only the first one counts
            state.t0_wall = msg.data["t0"]
            state.started.set()
        runner.send_message(wire.MSG_STARTED, {"worker": state.worker})

    def on_stop(msg, **_kw) -> None:
        state.stop_at = msg.data["at"]

    def on_end(msg, **_kw) -> None:
        state.ended.set()

    def on_values(msg, **_kw) -> None:  # correlation hook: another worker's values
        d = msg.data
        if state.correlation is not None:
            now = time.time()
            for ref, values, at in d["items"]:  # (replayer.engine.correlation.relaying)
                state.correlation.receive(ref, values, at, now)

    for name, fn in ((wire.MSG_CONFIG, on_config), (wire.MSG_STEPS, on_steps),
                     (wire.MSG_START, on_start),
                     (wire.MSG_STOP, on_stop), (wire.MSG_END, on_end),
                     (wire.MSG_VALUES, on_values)):
        runner.register_message(name, fn)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gevent import monkey

    monkey.patch_all()

    import structlog
    from locust import runners
    from locust.env import Environment

    from replayer.engine.state import RunState
    from replayer.engine.user import ReplayUser

    logs.configure_from(args.log_level, args.log_format)
    log = structlog.get_logger("rewind.replay.worker")
    # Locust retries every CONNECT_TIMEOUT (5 s) this many times, then raises ConnectionError
    runners.CONNECT_RETRY_COUNT = max(0, math.ceil(args.connect_timeout / runners.CONNECT_TIMEOUT) - 1)
    env = Environment(user_classes=[ReplayUser])
    state = env.rewind = RunState()
    try:
        runner = env.create_worker_runner(args.master_host, args.master_port)
    except ConnectionError:
        log.error("replay.worker.no_master", master=f"{args.master_host}:{args.master_port}",
                  waited_s=args.connect_timeout)
        return WorkerExit.NO_MASTER
    serve_worker(runner, state, log)
    log.info("replay.worker.connected", master=f"{args.master_host}:{args.master_port}")
    runner.greenlet.join()
    if state.finished:
        log.info("replay.worker.done", worker=state.worker)
        return WorkerExit.OK
    log.error("replay.worker.master_gone", worker=state.worker)
    return WorkerExit.MASTER_GONE


if __name__ == "__main__":
    sys.exit(main())
