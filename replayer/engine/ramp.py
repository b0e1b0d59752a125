"""``--mode ramp``: raise the offered rate in steps until the target breaks its SLO.

The rates are ``start, start + step, ...`` up to ``max``, each held for ``step_s`` seconds.
All steps run inside **one** Locust run: the k-th request sent (in recorded order, looping the
range) is due at ``Ramp.due(k)``, so the due times themselves encode the rising rate and no
worker is restarted between steps (a restart costs seconds and would leave a gap in the load).
The master watches the results as they arrive (``RampMonitor``): once a step is over, and a
grace time has passed for its last answers, it checks the SLO on the requests *due* in that
step; at the first step that breaks it, the master tells the workers to stop sending (so the
target is not pushed further), and the highest rate of a step that held is the capacity.

A request of the step that has not been answered by the time the step is judged has waited at
least the grace time, which is longer than every latency limit of the SLO, so it is counted as
a request slower than the limit: the verdict is the one the complete answers would give.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from replayer.engine.slo import Objective, check, measure
from replayer.judge.result import Result, nearest_rank

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

    def due_of(self, planned: int) -> Callable[[object, int], float]:
        """Due times for ``replayer.engine.pacing``: a step of a plan of ``planned`` steps, in
        loop iteration i, is the (step.idx + i * planned)-th request."""
        return lambda s, iteration: self.due(s.idx + iteration * planned)

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
    """Judges each step as its results arrive; ``tick`` returns a stop time once one broke."""

    def __init__(self, ramp: Ramp, slo: list[Objective], *, ship_every: float = 0.2,
                 log: Callable[..., None] | None = None) -> None:
        self.ramp, self.slo, self.log = ramp, slo, log
        worst = max((o.limit for o in slo if o.metric != "errors"), default=0.0) / 1000
        self.grace = max(0.5, 1.5 * worst) + 2 * ship_every  # longer than every latency limit
        self.buckets: list[list[tuple[float, bool]]] = [[] for _ in ramp.rates]
        self.verdicts: list[StepVerdict] = []
        self.stop_at: float | None = None
        self._seen = 0

    def tick(self, results: list[Result], elapsed: float) -> float | None:
        """Take the new ``results``; judge every step whose end + grace has passed."""
        for r in results[self._seen:]:
            self._add(r)
        self._seen = len(results)
        while self.stop_at is None and len(self.verdicts) < len(self.ramp.rates):
            i = len(self.verdicts)
            if elapsed < (i + 1) * self.ramp.step_s + self.grace:
                break
            self._judge(i, elapsed, missing_ms=self.grace * 1000)
        return self.stop_at

    def finish(self, results: list[Result], elapsed: float) -> None:
        """After the run: judge the steps not judged yet with every answer in."""
        self.tick(results, 0.0)
        while self.stop_at is None and len(self.verdicts) < len(self.ramp.rates):
            self._judge(len(self.verdicts), elapsed, missing_ms=None)

    @property
    def capacity(self) -> float | None:
        """The highest rate of a step that held (None: even the first step broke the SLO)."""
        held = [v.rate for v in self.verdicts if v.held]
        return max(held) if held else None

    def _add(self, r: Result) -> None:
        self.buckets[self.ramp.step_of(r.due)].append((r.latency_ms + r.wait_ms, r.failed))

    def _judge(self, i: int, elapsed: float, missing_ms: float | None) -> None:
        got = self.buckets[i]
        missing = max(0, self.ramp.counts[i] - len(got)) if missing_ms is not None else 0
        lat = [ms for ms, failed in got if not failed] + [missing_ms or 0.0] * missing
        errors = sum(1 for _, failed in got if failed)
        values = measure(self.slo, lat, errors, len(got) + missing)
        failing = check(self.slo, values)
        v = StepVerdict(i, self.ramp.rates[i], not failing, values, failing, round(elapsed, 3))
        self.verdicts.append(v)
        if failing:
            self.stop_at = elapsed
        if self.log:
            self.log("replay.ramp_step", step=i, rate=v.rate, held=v.held,
                     **{k: _round(x) for k, x in values.items()}, failing=failing or None,
                     unanswered=missing or None)


def step_table(results: list[Result], ramp: Ramp, monitor: RampMonitor) -> list[dict]:
    """Per step, from every result of the run: offered and achieved rate, latency, errors,
    scheduler lag, and the verdict the monitor gave while the run went on."""
    by_step: list[list[Result]] = [[] for _ in ramp.rates]
    for r in results:
        by_step[ramp.step_of(r.due)].append(r)
    rows = []
    for v in monitor.verdicts:
        rs = by_step[v.step]
        ok = sorted(r.latency_ms + r.wait_ms for r in rs if not r.failed)
        sched = sorted(r.lag_ms - r.wait_ms for r in rs)
        rows.append({
            "step": v.step, "offered_rps": v.rate, "planned": ramp.counts[v.step],
            "sent": len(rs), "achieved_rps": round(len(rs) / ramp.step_s, 2),
            "p50_ms": _round(nearest_rank(ok, 50)), "p95_ms": _round(nearest_rank(ok, 95)),
            "p99_ms": _round(nearest_rank(ok, 99)),
            "error_rate": round(sum(1 for r in rs if r.failed) / len(rs), 4) if rs else None,
            "scheduler_lag_p99_ms": _round(nearest_rank(sched, 99)),
            "held": v.held, "failing": v.failing,
            "judged": {k: _round(x) for k, x in v.values.items()},
        })
    return rows


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4 if x < 1 else 2)
