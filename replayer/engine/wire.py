"""What the replay master and its workers say to each other, over Locust's custom messages.

A worker is told everything by messages, never through files, so it runs the same as a child
process or as a Pod elsewhere (``rewind-replay-worker``). The conversation, master -> worker:

  rewind_config  {"worker": i, "settings": {...}}   repeated until acknowledged (rewind_configured)
  rewind_steps   {"steps": [step, ...]}              its share, in batches (follow: live batches)
  rewind_loaded? {"count": n}                         end of the share; answered by rewind_loaded
  rewind_start   {"t0": epoch s}                      repeated until acknowledged (rewind_started)
  rewind_stop    {"at": s after t0}                   send nothing due from then on
  rewind_end     {}                                   follow: no more steps will come

and worker -> master: rewind_configured, rewind_loaded {"worker", "count"}, rewind_started,
rewind_results [result, ...] (every 0.2 s), rewind_done {"worker", "crashed"}. Locust drops a
message that arrives before its handler is registered, hence the repeats of config and start.
"""

from __future__ import annotations

from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp

__all__ = ["MSG_CONFIG", "MSG_CONFIGURED", "MSG_DONE", "MSG_END", "MSG_LOAD_END", "MSG_LOADED",
           "MSG_RESULTS", "MSG_START", "MSG_STARTED", "MSG_STEPS", "MSG_STOP", "send_steps",
           "serve_worker", "step_from_wire", "step_to_wire"]

MSG_CONFIG, MSG_CONFIGURED = "rewind_config", "rewind_configured"
MSG_STEPS, MSG_LOAD_END, MSG_LOADED = "rewind_steps", "rewind_loaded?", "rewind_loaded"
MSG_START, MSG_STARTED = "rewind_start", "rewind_started"
MSG_RESULTS, MSG_DONE = "rewind_results", "rewind_done"
MSG_STOP, MSG_END = "rewind_stop", "rewind_end"

BATCH_STEPS = 500  # steps per message
BATCH_BYTES = 1 << 20  # or fewer, when their bodies add up to this


def step_to_wire(s: Step) -> list:
    return [s.idx, s.conn, s.due, s.method, s.target, s.headers, s.body, s.endpoint,
            s.rec_status, s.rec_body, s.rec_body_ok, s.version]


def step_from_wire(v: list) -> Step:
    (idx, conn, due, method, target, headers, body, endpoint, rec_status, rec_body,
     rec_body_ok, version) = v
    return Step(idx, conn, due, method, target, [tuple(h) for h in headers], body, endpoint,
                rec_status, rec_body, rec_body_ok, version)


def send_steps(runner, client_id: str, steps: list[Step]) -> None:
    """Send ``steps`` to one worker in batches of at most BATCH_STEPS steps / ~BATCH_BYTES."""
    batch, size = [], 0
    for s in steps:
        batch.append(step_to_wire(s))
        size += len(s.body) + len(s.rec_body) + 200
        if len(batch) >= BATCH_STEPS or size >= BATCH_BYTES:
            runner.send_message(MSG_STEPS, {"steps": batch}, client_id)
            batch, size = [], 0
    if batch:
        runner.send_message(MSG_STEPS, {"steps": batch}, client_id)


def serve_worker(runner, settings, log) -> None:
    """Register the worker's side of the conversation on a Locust WorkerRunner."""

    def on_config(msg, **_kw) -> None:
        data = msg.data
        if settings.worker is None:
            settings.worker = data["worker"]
            apply_settings(settings, data["settings"])
            log.info("replay.worker.configured", worker=settings.worker,
                     target=settings.target, follow=settings.follow)
        runner.send_message(MSG_CONFIGURED, {"worker": settings.worker})

    def on_steps(msg, **_kw) -> None:
        settings.inbox([step_from_wire(v) for v in msg.data["steps"]])

    def on_load_end(msg, **_kw) -> None:
        runner.send_message(MSG_LOADED, {"worker": settings.worker, "count": len(settings.steps)})

    def on_start(msg, **_kw) -> None:
        if settings.t0_wall is None:  # repeated by the master; only the first one counts
            settings.t0_wall = msg.data["t0"]
            settings.started.set()
        runner.send_message(MSG_STARTED, {"worker": settings.worker})

    def on_stop(msg, **_kw) -> None:
        settings.stop_at = msg.data["at"]

    def on_end(msg, **_kw) -> None:
        settings.ended.set()

    for name, fn in ((MSG_CONFIG, on_config), (MSG_STEPS, on_steps), (MSG_LOAD_END, on_load_end),
                     (MSG_START, on_start), (MSG_STOP, on_stop), (MSG_END, on_end)):
        runner.register_message(name, fn)


def settings_to_wire(*, target: str, ignore: list[str], timeout: float, loop: bool,
                     duration: float | None, span: float, ramp: Ramp | None, planned: int,
                     follow: bool, idle_s: float, noise: dict | None = None,
                     keep_bodies: bool = False) -> dict:
    return {"target": target, "ignore": ignore, "timeout": timeout, "loop": loop,
            "duration": duration, "span": span, "ramp": ramp.to_json() if ramp else None,
            "planned": planned, "follow": follow, "idle_s": idle_s, "noise": noise or {},
            "keep_bodies": keep_bodies}


def apply_settings(settings, d: dict) -> None:
    settings.target = d["target"]
    settings.ignore = d["ignore"]
    settings.timeout = d["timeout"]
    settings.loop = d["loop"]
    settings.duration = d["duration"]
    settings.span = d["span"]
    settings.ramp = Ramp(**d["ramp"]) if d.get("ramp") else None
    settings.planned = d["planned"]
    settings.follow = d["follow"]
    settings.idle_s = d["idle_s"]
    settings.noise = d["noise"]
    settings.keep_bodies = d["keep_bodies"]
