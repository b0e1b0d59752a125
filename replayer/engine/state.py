"""A worker's state for one run: ``RunState``, kept on the run's Locust environment.

``rewind-replay-worker`` makes one ``RunState`` and puts it on its ``Environment`` as
``environment.rewind``; the worker's message handlers (``replayer.engine.worker``) fill it and
the ``ReplayUser`` (``replayer.engine.user``) reads it from ``self.environment``. Nothing of a
run is kept in a module, so two runs in one process (tests) do not share anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gevent.event import Event

from replayer.engine.plan import Step
from replayer.engine.shard import Shard, StepHooks
from replayer.engine.wire import Settings

__all__ = ["RunState"]


@dataclass(slots=True, eq=False)
class RunState:
    settings: Settings | None = None  # from the master's config message
    worker: int | None = None  # this worker's index, from the same message
    steps: list[Step] = field(default_factory=list)  # steps that arrived before the replay ran
    shard: Shard | None = None  # where steps go once the replay runs
    hooks: StepHooks | None = None  # correlation hooks (None: none)
    t0_wall: float | None = None  # start time (epoch seconds), sent by the master
    started: Event = field(default_factory=Event)
    stop_at: float | None = None  # set by the master (rewind_stop): nothing is sent from then on
    ended: Event = field(default_factory=Event)  # no more steps will come
    claimed: bool = False  # a ReplayUser took this run (one per worker replays)
    finished: bool = False  # this worker sent all its results and said done
    correlation: object = None  # correlation hook: the run's Correlator (engine/correlation)

    def add_steps(self, steps: list[Step]) -> None:
        """Steps that arrived: to the shard once the replay runs, else kept until it does."""
        if self.shard is not None:
            self.shard.add(steps)
        else:
            self.steps.extend(steps)

    def limit(self) -> float | None:
        """Nothing due (or sent) at or after this (s after t0): --duration or the stop."""
        d, stop = self.settings.duration, self.stop_at
        return d if stop is None else (stop if d is None else min(stop, d))
