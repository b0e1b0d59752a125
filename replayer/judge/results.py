"""Turn the per-request results of a run into the report's numbers: ``summarize(results, ...)``.

A result is the tuple ``replay_connection`` appends (see ``Result`` below for the fields).
Errors are transport failures (no answer: refused, reset, timeout) plus 5xx answers; a status
that differs from the recording is a *mismatch*, counted apart from errors.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import NamedTuple

__all__ = ["Result", "percentiles", "summarize"]

PCTS = (50, 90, 95, 99)
BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
TOP = 20


class Result(NamedTuple):
    idx: int
    worker: int
    due: float  # s after start
    sent: float  # s after start
    lag_ms: float  # sent - due
    wait_ms: float  # part of the lag spent waiting for the previous answer on the connection
    latency_ms: float
    status: int  # 0: no answer
    error: str | None
    endpoint: str
    status_ok: bool
    body_ok: bool | None
    diffs: list
    iteration: int
    body: bytes | None = None  # the answer, only in baseline runs (learning noise)


def pct(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


def percentiles(values: list[float]) -> dict:
    v = sorted(values)
    out = {f"p{p}": _r(pct(v, p)) for p in PCTS}
    out["max"] = _r(v[-1]) if v else None
    out["mean"] = _r(sum(v) / len(v)) if v else None
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _is_error(r: Result) -> bool:
    return r.error is not None or r.status >= 500


def _rates(rs: list[Result]) -> dict:
    n = len(rs)
    errors = sum(1 for r in rs if _is_error(r))
    answered = [r for r in rs if r.error is None]
    compared = [r for r in answered if r.body_ok is not None]
    return {
        "count": n,
        "errors": errors,
        "error_rate": _r(errors / n) if n else 0.0,
        "status_mismatches": sum(1 for r in answered if not r.status_ok),
        "status_mismatch_rate": _r(sum(1 for r in answered if not r.status_ok) / len(answered))
        if answered else 0.0,
        "bodies_compared": len(compared),
        "body_mismatch_rate": _r(sum(1 for r in compared if not r.body_ok) / len(compared))
        if compared else 0.0,
    }


def summarize(raw: list[tuple], *, mode: str, recorded_status: Counter | None = None) -> dict:
    rs = sorted((Result(*r) for r in raw), key=lambda r: r.sent)
    n = len(rs)
    timed = mode != "max"  # in max mode nothing is "due", so lag means nothing
    span = rs[-1].sent - rs[0].sent if n > 1 else 0.0
    end = max((r.sent + r.latency_ms / 1000 for r in rs), default=0.0)
    totals = {
        "sent": n,
        **_rates(rs),
        "transport_errors": sum(1 for r in rs if r.error is not None),
        "http_5xx": sum(1 for r in rs if r.status >= 500),
        "send_window_s": _r(span),
        "duration_s": _r(end - (rs[0].sent if rs else 0.0)),
        "rps": _r((n - 1) / span) if span > 0 else None,
    }
    endpoints = {}
    by_ep: dict[str, list[Result]] = defaultdict(list)
    for r in rs:
        by_ep[r.endpoint].append(r)
    for ep in sorted(by_ep, key=lambda e: (-len(by_ep[e]), e)):
        group = by_ep[ep]
        diffs = Counter(d for r in group for d in r.diffs)
        endpoints[ep] = {
            **_rates(group),
            "latency_ms": percentiles([r.latency_ms for r in group if r.error is None]),
            "status_codes": dict(sorted(Counter(str(r.status) for r in group).items())),
            "diff_paths": dict(diffs.most_common(TOP)),
        }
    summary = {
        "totals": totals,
        "latency_ms": percentiles([r.latency_ms for r in rs if r.error is None]),
        "lag_ms": percentiles([r.lag_ms for r in rs]) if timed else None,
        "scheduler_lag_ms": percentiles([r.lag_ms - r.wait_ms for r in rs]) if timed else None,
        "waited_for_connection": sum(1 for r in rs if r.wait_ms > 0) if timed else None,
        "status_codes": dict(sorted(Counter(str(r.status) for r in rs).items())),
        "recorded_status_codes": dict(sorted((str(k), v) for k, v in (recorded_status or {}).items())),
        "errors": dict(Counter(r.error or f"HTTP {r.status}" for r in rs if _is_error(r))
                       .most_common(TOP)),
        "endpoints": endpoints,
        "series": _series(rs, timed),
    }
    return summary


def _series(rs: list[Result], timed: bool) -> dict:
    if not rs:
        return {"bucket_s": 1, "t": []}
    t_end = max(r.sent for r in rs)
    bucket = next((b for b in BUCKETS if t_end / b <= 120), BUCKETS[-1])
    count = int(t_end // bucket) + 1
    groups: list[list[Result]] = [[] for _ in range(count)]
    for r in rs:
        groups[max(0, int(r.sent // bucket))].append(r)
    s: dict[str, list] = defaultdict(list)
    for i, g in enumerate(groups):
        s["t"].append(round(i * bucket, 3))
        s["rps"].append(round(len(g) / bucket, 2))
        s["errors_per_s"].append(round(sum(1 for r in g if _is_error(r)) / bucket, 2))
        lat = sorted(r.latency_ms for r in g if r.error is None)
        for p in PCTS:
            s[f"p{p}_ms"].append(_r(pct(lat, p)))
        s["max_ms"].append(_r(lat[-1]) if lat else None)
        if timed:
            lag = sorted(r.lag_ms for r in g)
            s["lag_p50_ms"].append(_r(pct(lag, 50)))
            s["lag_p99_ms"].append(_r(pct(lag, 99)))
            s["lag_max_ms"].append(_r(lag[-1]) if lag else None)
    # what the schedule asked for, by due time
    due = [0] * count
    for r in rs:
        i = int(r.due // bucket)
        if 0 <= i < count:
            due[i] += 1
    s["scheduled_rps"] = [round(d / bucket, 2) for d in due] if timed else []
    return {"bucket_s": bucket, **s}
