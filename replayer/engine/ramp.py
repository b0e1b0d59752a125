"""``--mode ramp``: raise the offered rate in steps until the target breaks its SLO.

The rates are ``start, start + step, ...`` up to ``max``, each held for ``step_s`` seconds.
All steps run inside **one** Locust run: the k-th request sent (in recorded order, looping the
range) is due at ``Ramp.due(k)``, so the due times themselves encode the rising rate and no
worker is restarted between steps (a restart costs seconds and would leave a gap in the load).
The master watches the results as they arrive (``RampMonitor``, from the workers' summaries
per ramp step, ``Totals.steps``): once a step is over, and a grace time has passed for its last
answers, it checks the SLO on the requests *due* in that step; at the first step that breaks it,
the master tells the workers to stop sending (so the target is not pushed further), and the
highest rate of a step that held is the capacity.

A request of the step that has not been answered by the time the step is judged has waited at
least the grace time, which is longer than every latency limit of the SLO, so it is counted as
a request slower than the limit: the verdict is the one the complete answers would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from replayer.engine.slo import Objective, check, measure
from replayer.judge import sketch
from replayer.judge.aggregate import Totals
from replayer.judge.summary import Summary

__all__ = ["Ramp", "RampMonitor", "StepVerdict", "step_table"]


@dataclass(frozen=True, slots=True)
class Ramp:
    start: float  # requests/s of the first step
    step: float  # added at each step
    max: float  # no step above this rate
    step_s: float  # how long each step lasts
    rates: tuple[float, ...] = field(init=False)
    counts: tuple[int, ...] = field(init=False)  # requests due in each step

    def __post_init__(self) -> None:
        n = int(math.floor((self.max - self.start) / self.step + 1e-9)) + 1 if self.step else 1
        rates = tuple(self.start + i * self.step for i in range(max(1, n)))
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "counts", tuple(max(1, round(r * self.step_s)) for r in rates))

    @property
    def duration(self) -> float:
        return len(self.rates) * self.step_s

    @property
    def total(self) -> int:
        return sum(self.counts)

    def due(self, k: int) -> float:
        """Seconds after the start at which the k-th request (0-based, all workers) is due."""
        for i, c in enumerate(self.counts):
            if k < c:
                return i * self.step_s + k / self.rates[i]
            k -= c
        return math.inf

    def step_of(self, due: float) -> int:
        return min(len(self.rates) - 1, max(0, int(due // self.step_s)))

    def to_json(self) -> dict:
        return {"start": self.start, "step": self.step, "max": self.max, "step_s": self.step_s}


@dataclass(slots=True)
class StepVerdict:
    step: int
    rate: float
    held: bool
    values: dict  # metric -> value at judging time
    failing: list[str]
    judged_at_s: float  # seconds after the start


class RampMonitor:
    """Judges each step as its summaries arrive; ``tick`` returns a stop time once one broke."""

    def __init__(self, ramp: Ramp, slo: list[Objective], *, ship_every: float = 0.25,
                 log: Callable[..., None] | None = None) -> None:
        self.ramp, self.slo, self.log = ramp, slo, log
        worst = max((o.limit for o in slo if o.metric != "errors"), default=0.0) / 1000
        self.grace = max(0.5, 1.5 * worst) + 2 * ship_every  # longer than every latency limit
        self.verdicts: list[StepVerdict] = []
        self.stop_at: float | None = None

    def tick(self, totals: Totals, elapsed: float) -> float | None:
        """Judge every step whose end + grace has passed, from ``totals.steps``."""
        while self.stop_at is None and len(self.verdicts) < len(self.ramp.rates):
            i = len(self.verdicts)
            if elapsed < (i + 1) * self.ramp.step_s + self.grace:
                break
            self._judge(totals, i, elapsed, missing_ms=self.grace * 1000)
        return self.stop_at

    def finish(self, totals: Totals, elapsed: float) -> None:
        """After the run: judge the steps not judged yet with every answer in."""
        while self.stop_at is None and len(self.verdicts) < len(self.ramp.rates):
            self._judge(totals, len(self.verdicts), elapsed, missing_ms=None)

    @property
    def capacity(self) -> float | None:
        """The highest rate of a step that held (None: even the first step broke the SLO)."""
        held = [v.rate for v in self.verdicts if v.held]
        return max(held) if held else None

    def _judge(self, totals: Totals, i: int, elapsed: float, missing_ms: float | None) -> None:
        got = totals.steps.get(i) or Summary()
        missing = max(0, self.ramp.counts[i] - got.count) if missing_ms is not None else 0
        lat = sketch.new()
        lat.merge(got.client)  # answered, not failed: latency + wait for the connection
        if missing:
            lat.add(missing_ms, missing)
        values = measure(self.slo, lat, got.errors, got.count + missing)
        failing = check(self.slo, values)
        v = StepVerdict(i, self.ramp.rates[i], not failing, values, failing, round(elapsed, 3))
        self.verdicts.append(v)
        if failing:
            self.stop_at = elapsed
        if self.log:
            self.log("replay.ramp_step", step=i, rate=v.rate, held=v.held,
                     **{k: _round(x) for k, x in values.items()}, failing=failing or None,
                     unanswered=missing or None)


def step_table(totals: Totals, ramp: Ramp, monitor: RampMonitor) -> list[dict]:
    """Per step, from the run's summaries: offered and achieved rate, latency, errors,
    scheduler lag, and the verdict the monitor gave while the run went on."""
    rows = []
    for v in monitor.verdicts:
        s = totals.steps.get(v.step) or Summary()
        rows.append({
            "step": v.step, "offered_rps": v.rate, "planned": ramp.counts[v.step],
            "sent": s.count, "achieved_rps": round(s.count / ramp.step_s, 2),
            "p50_ms": _round(sketch.quantile(s.client, 50)),
            "p95_ms": _round(sketch.quantile(s.client, 95)),
            "p99_ms": _round(sketch.quantile(s.client, 99)),
            "error_rate": round(s.errors / s.count, 4) if s.count else None,
            "scheduler_lag_p99_ms": _round(sketch.quantile(s.sched, 99)),
            "held": v.held, "failing": v.failing,
            "judged": {k: _round(x) for k, x in v.values.items()},
        })
    return rows


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4 if x < 1 else 2)
