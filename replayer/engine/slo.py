"""Service level objectives for ``--mode ramp``: ``parse_slo('p95<200ms,errors<1%')``.

An SLO is a comma-separated list of ``METRIC<LIMIT`` terms, all of which must hold:

  p50 p90 p95 p99 max   latency percentile, LIMIT with a unit: 200ms, 0.2s
  errors                share of requests that failed (``replayer.judge.result.is_error``: no
                        answer, or 5xx): 1%, 0.01

Latency here is what a client would have waited from the moment the request was due on its
connection: the answer time plus any wait for the previous answer on the same connection (a
target that answers slowly also keeps the next request waiting). The replayer's own scheduling
lag is left out: it is not the target's doing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from replayer.judge import sketch

__all__ = ["Objective", "SloError", "check", "parse_slo"]

LATENCY = ("p50", "p90", "p95", "p99", "max")
_TERM = re.compile(r"^\s*([a-z0-9]+)\s*<\s*([0-9]*\.?[0-9]+)\s*(ms|s|%)?\s*$")


class SloError(ValueError):
    """An SLO that cannot be read; the message says which term and what is expected."""


@dataclass(frozen=True, slots=True)
class Objective:
    metric: str  # p50 .. max, or errors
    limit: float  # ms for latency, a fraction (0.01) for errors
    text: str  # as written

    def line(self, value: float | None) -> str:
        shown = "n/a" if value is None else (
            f"{value:.2%}" if self.metric == "errors" else f"{value:.1f}ms")
        return f"{self.text}: {shown}"


def parse_slo(text: str) -> list[Objective]:
    """``'p95<200ms,errors<1%'`` -> objectives; raises ``SloError`` naming the bad term."""
    terms = [t for t in str(text).split(",")]
    if not text or not text.strip():
        raise SloError("empty SLO; write terms like 'p95<200ms,errors<1%'")
    out = []
    for term in terms:
        m = _TERM.match(term.lower())
        if not m:
            raise SloError(f"cannot read {term.strip()!r}: write METRIC<LIMIT, e.g. p95<200ms or "
                           f"errors<1% (metrics: {', '.join(LATENCY)}, errors)")
        metric, number, unit = m.group(1), float(m.group(2)), m.group(3)
        if metric in LATENCY:
            if unit not in ("ms", "s"):
                raise SloError(f"{term.strip()!r}: a latency limit needs a unit, ms or s (200ms)")
            limit = number * (1000 if unit == "s" else 1)
        elif metric == "errors":
            if unit in ("ms", "s"):
                raise SloError(f"{term.strip()!r}: an error limit is a percentage (1%) or a "
                               f"fraction (0.01)")
            limit = number / 100 if unit == "%" else number
            if limit > 1:
                raise SloError(f"{term.strip()!r}: an error limit is at most 100%")
        else:
            raise SloError(f"unknown metric {metric!r} in {term.strip()!r} "
                           f"(metrics: {', '.join(LATENCY)}, errors)")
        if limit <= 0:
            raise SloError(f"{term.strip()!r}: the limit must be more than 0")
        out.append(Objective(metric, limit, term.strip()))
    return out


def measure(objectives: list[Objective], latencies_ms, errors: int,
            total: int) -> dict[str, float | None]:
    """Each objective's metric over one set of requests; ``latencies_ms`` is a DDSketch
    (``replayer.judge.sketch``: percentiles within its relative error)."""
    values: dict[str, float | None] = {}
    for o in objectives:
        if o.metric == "errors":
            values[o.metric] = errors / total if total else None
        elif latencies_ms.count == 0:
            values[o.metric] = None
        elif o.metric == "max":
            values[o.metric] = sketch.maximum(latencies_ms)
        else:
            values[o.metric] = sketch.quantile(latencies_ms, float(o.metric[1:]))
    return values


def check(objectives: list[Objective], values: dict[str, float | None]) -> list[str]:
    """The lines of the objectives that do not hold (a missing value does not hold)."""
    return [o.line(values.get(o.metric)) for o in objectives
            if values.get(o.metric) is None or not values[o.metric] < o.limit]
