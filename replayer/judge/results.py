"""Turn a run's merged results into the report's numbers: ``summarize(totals, ...)``.

``totals`` is a ``replayer.judge.aggregate.Totals`` (what the master merged from the workers'
shipments; ``Totals.of(results)`` for a list of ``Result``s). Errors are what ``result.is_error``
says (no answer: refused, reset, timeout; or a 5xx answer); a status that differs from the
recording is a *mismatch*, counted apart from errors. Percentiles come from DDSketches and are
within ``sketch.ACCURACY`` (1 %) of the exact value (clamped to the exact min and max); the
summary says so in ``percentiles_relative_error``.
"""

from __future__ import annotations

from collections import Counter

from replayer.judge import sketch
from replayer.judge.aggregate import Totals
from replayer.judge.summary import OTHER, SERIES_SKETCHES, Summary

__all__ = ["percentiles", "summarize"]

PCTS = (50, 90, 95, 99)
TOP = 20
MAX_POINTS = 120  # points of the report's series; buckets are merged to stay under it


def percentiles(s) -> dict:
    """p50..p99, max and mean of a DDSketch."""
    out = {f"p{p}": _r(sketch.quantile(s, p)) for p in PCTS}
    out["max"] = _r(sketch.maximum(s))
    out["mean"] = _r(s.avg) if s.count else None
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _rates(s: Summary) -> dict:
    n = s.count
    return {
        "count": n,
        "errors": s.errors,
        "error_rate": _r(s.errors / n) if n else 0.0,
        "status_mismatches": s.status_mismatches,
        "status_mismatch_rate": _r(s.status_mismatches / s.answered) if s.answered else 0.0,
        "bodies_compared": s.compared,
        "body_mismatch_rate": _r(s.body_mismatches / s.compared) if s.compared else 0.0,
    }


def _top(table: dict, n: int = TOP) -> dict:
    return dict(Counter(table).most_common(n))


def summarize(totals: Totals, *, mode: str, recorded_status: Counter | None = None) -> dict:
    all_ = totals.total()
    n = all_.count
    timed = mode != "max"  # in max mode nothing is "due", so lag means nothing
    first = all_.first_sent or 0.0
    span = (all_.last_sent - first) if n > 1 else 0.0
    t = {
        "sent": n,
        **_rates(all_),
        "transport_errors": all_.transport_errors,
        "http_5xx": all_.http_5xx,
        "send_window_s": _r(span),
        "duration_s": _r((all_.last_end or 0.0) - first),
        "rps": _r((n - 1) / span) if span > 0 else None,
    }
    endpoints = {}
    for ep in sorted(totals.endpoints, key=lambda e: (-totals.endpoints[e].count, e)):
        s = totals.endpoints[ep]
        endpoints[ep] = {
            **_rates(s),
            "latency_ms": percentiles(s.latency),
            "status_codes": dict(sorted(s.status.items())),
            "diff_paths": _top(s.diff_paths),
            "mismatch_examples": s.examples,
        }
    return {
        "totals": t,
        "percentiles_relative_error": sketch.ACCURACY,
        "latency_ms": percentiles(all_.latency),
        "lag_ms": percentiles(all_.lag) if timed else None,
        "scheduler_lag_ms": percentiles(all_.sched) if timed else None,
        "waited_for_connection": all_.waited if timed else None,
        "status_codes": dict(sorted(all_.status.items())),
        "recorded_status_codes": dict(sorted((str(k), v) for k, v in
                                             (recorded_status or {}).items())),
        "errors": _top(all_.error_kinds),
        "errors_other_kinds": all_.error_kinds.get(OTHER, 0),
        "endpoints": endpoints,
        "series": _series(totals, timed),
    }


def _series(totals: Totals, timed: bool) -> dict:
    if not totals.series:
        return {"bucket_s": totals.bucket_s, "t": []}
    last = max(totals.series)
    factor = 1
    while (last // factor) + 1 > MAX_POINTS:
        factor *= 2
    bucket = totals.bucket_s * factor
    count = last // factor + 1
    groups = [Summary() for _ in range(count)]
    for b, s in totals.series.items():
        groups[b // factor].merge(s, SERIES_SKETCHES)
    due = [0] * count
    for b, d in totals.due.items():
        if 0 <= b // factor < count:
            due[b // factor] += d
    s: dict[str, list] = {"t": [], "rps": [], "errors_per_s": []}
    for i, g in enumerate(groups):
        s["t"].append(i * bucket)
        s["rps"].append(round(g.count / bucket, 2))
        s["errors_per_s"].append(round(g.errors / bucket, 2))
        for p in PCTS:
            s.setdefault(f"p{p}_ms", []).append(_r(sketch.quantile(g.latency, p)))
        s.setdefault("max_ms", []).append(_r(g.latency._max) if g.latency.count else None)
        if timed:
            s.setdefault("lag_p50_ms", []).append(_r(sketch.quantile(g.lag, 50)))
            s.setdefault("lag_p99_ms", []).append(_r(sketch.quantile(g.lag, 99)))
            s.setdefault("lag_max_ms", []).append(_r(g.lag._max) if g.lag.count else None)
    s["scheduled_rps"] = [round(d / bucket, 2) for d in due] if timed else []
    return {"bucket_s": bucket, **s}
