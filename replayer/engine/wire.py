"""What the replay master and its workers say to each other, over Locust's custom messages.

A worker is told everything by messages, never through files, so it runs the same as a child
process or as a Pod elsewhere (``rewind-replay-worker``). The conversation, master -> worker:

  rewind_config  {"worker": i, "settings": Settings}   repeated until acknowledged (rewind_configured)
  rewind_start   {"t0": epoch s}                       repeated until acknowledged (rewind_started)
  rewind_steps   {"steps": [Step, ...]}               dealt as the master reads the range
  rewind_stop    {"at": s after t0}                    send nothing due from then on
  rewind_end     {}                                    no more steps will come
  rewind_values  {"items": [[ref, values, at], ...]}   correlation: other workers' answers

and worker -> master: rewind_configured {"worker"}, rewind_started {"worker"}, rewind_summary
{"worker", "finished", "cells", "due", "steps", "noise"} (every ``SHIP_EVERY_S``: the
``replayer.judge.aggregate.Aggregator``'s shipment; ``finished`` steps are the master's credits),
rewind_done {"worker", "crashed", "unsent", "correlation"}; rewind_values {"items", "from"}
(the answers of stateful steps, batched: ``replayer.engine.correlation.relaying``; the master
passes each on to the workers that need it). Locust drops a
message that arrives before its handler is registered, hence the repeats of config and start.
The master's side is ``replayer.engine.master`` and ``replayer.engine.feeder``, the worker's
``replayer.engine.worker``.

Locust packs each message with msgpack. The records inside are named on both sides and cross
as arrays in their declared field order (compact: a run sends every step): a ``Step`` by
``step_to_wire``/``step_from_wire``, a ``Summary`` by its ``to_wire``/``from_wire``, the
``Settings`` by ``settings_to_wire``/``settings_from_wire``. tests/unit/test_replay_wire.py pins
the bytes: a field added, removed or moved changes them, on purpose only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp

__all__ = ["MSG_CONFIG", "MSG_CONFIGURED", "MSG_DONE", "MSG_END", "MSG_START", "MSG_STARTED",
           "MSG_STEPS", "MSG_STOP", "MSG_SUMMARY", "MSG_VALUES", "STEP_FIELDS", "Settings", "send_steps",
           "settings_from_wire", "settings_to_wire", "step_from_wire", "step_to_wire"]

MSG_CONFIG, MSG_CONFIGURED = "rewind_config", "rewind_configured"
MSG_STEPS = "rewind_steps"
MSG_START, MSG_STARTED = "rewind_start", "rewind_started"
MSG_SUMMARY, MSG_DONE = "rewind_summary", "rewind_done"
MSG_STOP, MSG_END = "rewind_stop", "rewind_end"
MSG_VALUES = "rewind_values"  # correlation hook: values relayed between workers

BATCH_STEPS = 200  # steps per message
BATCH_BYTES = 1 << 20  # or fewer, when their bodies add up to this

STEP_FIELDS = tuple(f.name for f in fields(Step))  # a step on the wire: these, in this order


@dataclass(slots=True)
class Settings:
    """What a worker needs besides its steps, sent once (``rewind_config``)."""

    target: str
    ignore: list[str] = field(default_factory=list)  # --ignore JSON paths
    timeout: float = 30.0  # per request
    duration: float | None = None  # nothing due (or sent) this many seconds after t0 or later
    ramp: Ramp | None = None  # ramp mode: results are also summed per ramp step (by due time)
    timed: bool = True  # lag means something (every mode but max)
    idle_s: float = 60.0  # a replay connection with nothing queued this long is closed
    noise: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> learned noisy paths
    baseline_pass: int = 0  # --baseline: 1 keeps each answer on disk, 2 compares with it
    spill_dir: str = ""  # --baseline: where the worker keeps the first pass's answers
    correlate: dict | None = None  # correlation hook: CorrelateSettings.to_wire(); None: off


def step_to_wire(s: Step) -> list:
    """The step as an array in STEP_FIELDS order (spelled out: this runs for every step)."""
    return [s.idx, s.conn, s.due, s.method, s.target, s.headers, s.body, s.endpoint,
            s.rec_status, s.rec_body, s.rec_body_ok, s.version, s.iteration, s.corr]


def step_from_wire(v: list) -> Step:
    d = dict(zip(STEP_FIELDS, v, strict=True))
    d["headers"] = [tuple(h) for h in d["headers"]]  # msgpack gives lists
    return Step(**d)


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
