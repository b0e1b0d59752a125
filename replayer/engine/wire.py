"""What the replay master and its workers say to each other, over Locust's custom messages.

A worker is told everything by messages, never through files, so it runs the same as a child
process or as a Pod elsewhere (``rewind-replay-worker``). The conversation, master -> worker:

  rewind_config  {"worker": i, "settings": Settings}   repeated until acknowledged (rewind_configured)
  rewind_steps   {"steps": [Step, ...]}               its share, in batches (follow: live batches)
  rewind_loaded? {"count": n}                          end of the share; answered by rewind_loaded
  rewind_start   {"t0": epoch s}                       repeated until acknowledged (rewind_started)
  rewind_stop    {"at": s after t0}                    send nothing due from then on
  rewind_end     {}                                    follow: no more steps will come

and worker -> master: rewind_configured {"worker"}, rewind_loaded {"worker", "count"},
rewind_started {"worker"}, rewind_results [Result, ...] (every 0.2 s), rewind_done {"worker",
"crashed"}. Locust drops a message that arrives before its handler is registered, hence the
repeats of config and start. The master's side is ``replayer.engine.master``, the worker's
``replayer.engine.worker``.

Locust packs each message with msgpack. The three records inside are named on both sides and
cross as arrays in their declared field order (compact: a run sends every step and every
result): a ``Step`` by ``step_to_wire``/``step_from_wire``, a ``Result`` as itself (a
NamedTuple) read back by ``results_from_wire``, the ``Settings`` by ``settings_to_wire``/
``settings_from_wire``. tests/unit/test_replay_wire.py pins the bytes: a field added, removed or
moved changes them, on purpose only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp
from replayer.judge.result import Result

__all__ = ["MSG_CONFIG", "MSG_CONFIGURED", "MSG_DONE", "MSG_END", "MSG_LOAD_END", "MSG_LOADED",
           "MSG_RESULTS", "MSG_START", "MSG_STARTED", "MSG_STEPS", "MSG_STOP", "STEP_FIELDS",
           "Settings", "results_from_wire", "send_steps", "settings_from_wire", "settings_to_wire",
           "step_from_wire", "step_to_wire"]

MSG_CONFIG, MSG_CONFIGURED = "rewind_config", "rewind_configured"
MSG_STEPS, MSG_LOAD_END, MSG_LOADED = "rewind_steps", "rewind_loaded?", "rewind_loaded"
MSG_START, MSG_STARTED = "rewind_start", "rewind_started"
MSG_RESULTS, MSG_DONE = "rewind_results", "rewind_done"
MSG_STOP, MSG_END = "rewind_stop", "rewind_end"

BATCH_STEPS = 500  # steps per message
BATCH_BYTES = 1 << 20  # or fewer, when their bodies add up to this

STEP_FIELDS = tuple(f.name for f in fields(Step))  # a step on the wire: these, in this order


@dataclass(slots=True)
class Settings:
    """What a worker needs besides its steps, sent once (``rewind_config``)."""

    target: str
    ignore: list[str] = field(default_factory=list)  # --ignore JSON paths
    timeout: float = 30.0  # per request
    loop: bool = False
    duration: float | None = None  # stop sending after this many seconds
    span: float = 0.0  # with loop: iteration i is due i * span later
    ramp: Ramp | None = None  # ramp mode: the k-th request is due at ramp.due(k)
    planned: int = 0  # steps in the whole plan (all workers): k = idx + iteration * planned
    follow: bool = False  # steps keep arriving until rewind_end
    idle_s: float = 60.0  # follow: a replay connection idle this long is closed
    noise: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> learned noisy paths
    keep_bodies: bool = False  # results carry the answer's body (baseline runs)


def step_to_wire(s: Step) -> list:
    return [getattr(s, name) for name in STEP_FIELDS]


def step_from_wire(v: list) -> Step:
    d = dict(zip(STEP_FIELDS, v, strict=True))
    d["headers"] = [tuple(h) for h in d["headers"]]  # msgpack gives lists
    return Step(**d)


def results_from_wire(batch: list[list]) -> list[Result]:
    return [Result._make(v) for v in batch]


def settings_to_wire(s: Settings) -> dict:
    d = asdict(s)
    d["ramp"] = s.ramp.to_json() if s.ramp else None
    return d


def settings_from_wire(d: dict) -> Settings:
    ramp = d.get("ramp")
    return Settings(**{**d, "ramp": Ramp(**ramp) if ramp else None})


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
