"""A replay worker process: ``python -m replayer.worker SETTINGS.json``.

Started by ``replayer.run`` (one per ``--workers``). Reads its settings and its shard of the
plan, connects to the Locust master, waits for the start time, replays, and exits when the
master quits.
"""

from __future__ import annotations

import sys

import orjson


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], "rb") as f:
        conf = orjson.loads(f.read())

    from locust.env import Environment

    from replayer.plan import read_steps
    from replayer.ramp import Ramp
    from replayer.user import MSG_START, MSG_STARTED, MSG_STOP, SETTINGS, ReplayUser

    SETTINGS.target = conf["target"]
    SETTINGS.worker = conf["worker"]
    SETTINGS.steps = read_steps(conf["steps"])
    SETTINGS.ignore = conf["ignore"]
    SETTINGS.timeout = conf["timeout"]
    SETTINGS.loop = conf["loop"]
    SETTINGS.duration = conf["duration"]
    SETTINGS.span = conf["span"]
    SETTINGS.ramp = Ramp(**conf["ramp"]) if conf.get("ramp") else None
    SETTINGS.planned = conf.get("planned", 0)

    def on_start(msg, **_kw) -> None:
        # The master repeats this until every worker acknowledged it: a message that arrives
        # before the handler is registered is dropped by Locust. Only the first one counts.
        if SETTINGS.t0_wall is None:
            SETTINGS.t0_wall = msg.data["t0"]
            SETTINGS.started.set()
        runner.send_message(MSG_STARTED, {"worker": SETTINGS.worker})

    env = Environment(user_classes=[ReplayUser])
    runner = env.create_worker_runner(conf["master_host"], conf["master_port"])
    def on_stop(msg, **_kw) -> None:
        SETTINGS.stop_at = msg.data["at"]

    runner.register_message(MSG_START, on_start)
    runner.register_message(MSG_STOP, on_stop)
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
