"""Sampling the watched sources on a fixed grid: ``Sampler(sources, clock, interval, log)``.

``tick()`` takes one sample of every live source at ``clock.now()``; ``run(stopped)`` ticks every
``interval`` s on the grid start + k * interval (a slow tick skips the points it missed, it
does not bunch them) until ``stopped()`` is true, then takes one last sample so the end of the
run is in every series. A failed sample is counted per source and logged (``watch.failed``);
a source that ended (a pid that exited) is reported once (``watch.ended``) and not asked again.
The clock is passed in (``now()`` and ``sleep(s)``, seconds): tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from replayer.watch.procfs import SourceEnded, SourceFailed
from replayer.watch.series import Series

__all__ = ["Clock", "SYSTEM_CLOCK", "Sampler", "SourceState"]


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    """time.monotonic and time.sleep, looked up at each call: ``rewind-replay`` imports this
    before gevent patches ``time.sleep``, and a sleep bound then would block every greenlet."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = _SystemClock()


@dataclass(slots=True)
class SourceState:
    """How one source fared: samples taken, failures (with the last message), empty answers."""

    label: str
    kind: str
    samples: int = 0
    failures: int = 0
    empty: int = 0  # a query that answered with no series
    last_error: str | None = None
    ended_at_s: float | None = None  # when it was found ended (pid exited)
    ended: str | None = None
    series: list[str] = field(default_factory=list)  # labels of the series it gave

    def to_json(self) -> dict:
        return {"label": self.label, "kind": self.kind, "samples": self.samples,
                "failures": self.failures, "empty": self.empty, "last_error": self.last_error,
                "ended_at_s": self.ended_at_s, "ended": self.ended, "series": self.series}


class Sampler:
    def __init__(self, sources: list, *, clock: Clock = SYSTEM_CLOCK, interval: float = 10.0,
                 log: Callable[..., None] | None = None) -> None:
        self.sources = list(sources)
        self.clock = clock
        self.interval = interval
        self.log = log or (lambda event, **kw: None)
        self.states = [SourceState(s.label, s.kind) for s in self.sources]
        self.series: dict[str, Series] = {}
        self.start: float | None = None

    def tick(self) -> None:
        """One sample of every source that has not ended."""
        now = self.clock.now()
        if self.start is None:
            self.start = now
        t = now - self.start
        for src, st in zip(self.sources, self.states, strict=True):
            if st.ended is not None:
                continue
            try:
                values = src.sample()
            except SourceEnded as exc:
                st.ended, st.ended_at_s = str(exc), round(t, 3)
                self.log("watch.ended", source=st.label, reason=str(exc), at_s=round(t, 3))
                continue
            except SourceFailed as exc:
                st.failures += 1
                st.last_error = str(exc)
                self.log("watch.failed", source=st.label, error=str(exc), failures=st.failures)
                continue
            st.samples += 1
            if not values:
                st.empty += 1
            for label, value, unit in values:
                s = self.series.get(label)
                if s is None:
                    s = self.series[label] = Series(label, st.label, unit)
                    st.series.append(label)
                s.add(t, value)

    def run(self, stopped: Callable[[], bool], poll: float = 0.25) -> None:
        """Tick on the grid until ``stopped()``; then one last tick. Checks ``stopped`` at least
        every ``poll`` s, so the end of a run is not held up by a long interval."""
        self.tick()
        due = self.start + self.interval
        while not stopped():
            now = self.clock.now()
            if now >= due:
                self.tick()
                due += self.interval * (1 + int((now - due) // self.interval))
                continue
            self.clock.sleep(min(poll, due - now))
        self.tick()

    def to_json(self) -> dict:
        return {"interval_s": self.interval,
                "sources": [st.to_json() for st in self.states],
                "series": [s.to_json() for s in self.series.values()]}
