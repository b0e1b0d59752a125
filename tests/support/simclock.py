"""A simulated clock for greenlets, and a simulated target, to test the replay's timing exactly.

    clock = SimClock()
    clock.run(lambda: replay_shard(steps, lambda: SimTarget(clock, latency=0.1), 0.0, out, ...,
                                   clock=clock))

``SimClock`` has the ``now()``/``sleep()`` of ``replayer.engine.pacing.Clock``. A greenlet that
sleeps is parked until simulated time reaches its wake-up; ``run`` lets every greenlet go on
until all are parked (``gevent.idle``), then jumps to the earliest wake-up, one at a time, so
time moves only when a sleep says so and a run of 30 simulated seconds takes milliseconds.
``SimTarget`` stands where ``replayer.engine.http1.Connection`` does and answers each request
after ``latency`` simulated seconds, noting (send time, request) for each.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import gevent
from gevent.event import Event

from replayer.engine.http1 import Prepared

__all__ = ["SimClock", "SimTarget"]


class SimClock:
    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self._wakeups: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        ev = Event()
        heapq.heappush(self._wakeups, (self.t + max(0.0, seconds), next(self._seq), ev))
        ev.wait()

    def run(self, *funcs: Callable[[], object]) -> list:
        """Run ``funcs`` as greenlets on simulated time until all return; their results."""
        greenlets = [gevent.spawn(f) for f in funcs]
        while True:
            gevent.idle()
            if all(g.dead for g in greenlets):
                return [g.get() for g in greenlets]
            if not self._wakeups:
                raise RuntimeError("every greenlet waits for something other than the clock")
            t, _, ev = heapq.heappop(self._wakeups)
            self.t = max(self.t, t)
            ev.set()


class SimTarget:
    """A replay client whose server answers ``status`` after ``latency`` simulated seconds
    (``latency`` may be a function of the step's target)."""

    def __init__(self, clock: SimClock, *, latency: float | Callable[[str], float] = 0.0,
                 status: int = 200, sent: list | None = None) -> None:
        self.clock = clock
        self.latency = latency
        self.status = status
        self.sent = [] if sent is None else sent  # (send time, target) of every request
        self.connects = 0

    def prepare(self, s) -> Prepared:
        return Prepared(data=s.target.encode(), head=s.method == "HEAD")

    def connect(self) -> None:
        self.connects += 1

    def close(self) -> None:
        pass

    def send(self, req: Prepared) -> tuple[int, bytes]:
        target = req.data.decode()
        self.sent.append((self.clock.now(), target))
        latency = self.latency(target) if callable(self.latency) else self.latency
        if latency:
            self.clock.sleep(latency)
        return self.status, b""
