"""``rewind-replay-worker``: one replay worker, connected to a ``rewind-replay`` master.

The master (``rewind-replay``) starts these itself (``--workers N``, processes on its machine) or
waits for N of them started elsewhere (``--external-workers N``: Pods of a Kubernetes Job). Either
way a worker knows only where the master is; everything else arrives over Locust messages
(``replayer.engine.wire``): its index and settings, its share of the plan in batches (or, with
``--follow``, live batches as the master reads them), the start time, stop and end. It replays,
sends its results back, and exits when the master ends the run.
"""

from __future__ import annotations

import argparse
import math
import sys

from sidecar.common import cli_args as a

EXIT_OK, EXIT_USAGE, EXIT_NO_MASTER, EXIT_MASTER_GONE = 0, 2, 3, 4

EPILOG = """\
examples:
  rewind-replay-worker --master-host rewind-master --master-port 5557
  REWIND_MASTER_HOST=10.0.0.5 REWIND_MASTER_PORT=5557 rewind-replay-worker

exit codes: 0 this worker's share was replayed and sent, and the master ended the run;
2 bad arguments; 3 no master answered at --master-host:--master-port within --connect-timeout;
4 the master went away (quit, or no heartbeat for 60 s) before this worker had sent all its
results (the run was aborted; the master reports it)
"""


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
    a.add(p, "--log-level", default="info", choices=["debug", "info", "warning", "error"],
          help="log level")
    a.add(p, "--log-format", default="auto", choices=["auto", "json", "console"],
          help="log format (auto: console on a terminal, JSON otherwise)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gevent import monkey

    monkey.patch_all()

    import structlog
    from locust import runners
    from locust.env import Environment

    from replayer.engine import wire
    from replayer.engine.user import SETTINGS, ReplayUser
    from sidecar.common import logs

    logs.configure(args.log_level, json={"auto": None, "json": True, "console": False}[args.log_format])
    log = structlog.get_logger("rewind.replay.worker")
    # Locust retries every CONNECT_TIMEOUT (5 s) this many times, then raises ConnectionError
    runners.CONNECT_RETRY_COUNT = max(0, math.ceil(args.connect_timeout / runners.CONNECT_TIMEOUT) - 1)
    env = Environment(user_classes=[ReplayUser])
    try:
        runner = env.create_worker_runner(args.master_host, args.master_port)
    except ConnectionError:
        log.error("replay.worker.no_master", master=f"{args.master_host}:{args.master_port}",
                  waited_s=args.connect_timeout)
        return EXIT_NO_MASTER
    wire.serve_worker(runner, SETTINGS, log)
    log.info("replay.worker.connected", master=f"{args.master_host}:{args.master_port}")
    runner.greenlet.join()
    if SETTINGS.finished:
        log.info("replay.worker.done", worker=SETTINGS.worker)
        return EXIT_OK
    log.error("replay.worker.master_gone", worker=SETTINGS.worker)
    return EXIT_MASTER_GONE


if __name__ == "__main__":
    sys.exit(main())
