"""Turn the per-request results of a run into the report's numbers: ``summarize(results, ...)``.

The results are ``replayer.judge.result.Result`` records. Errors are what ``result.is_error``
says (no answer: refused, reset, timeout; or a 5xx answer); a status that differs from the
recording is a *mismatch*, counted apart from errors. Percentiles are nearest-rank
(``result.nearest_rank``).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from replayer.judge.result import Result, nearest_rank

__all__ = ["percentiles", "summarize"]

PCTS = (50, 90, 95, 99)
BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
TOP = 20


def percentiles(values: list[float]) -> dict:
    v = sorted(values)
    out = {f"p{p}": _r(nearest_rank(v, p)) for p in PCTS}
    out["max"] = _r(v[-1]) if v else None
    out["mean"] = _r(sum(v) / len(v)) if v else None
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _rates(rs: list[Result]) -> dict:
    n = len(rs)
    errors = sum(1 for r in rs if r.failed)
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


def summarize(results: list[Result], *, mode: str, recorded_status: Counter | None = None) -> dict:
    rs = sorted(results, key=lambda r: r.sent)
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
        "errors": dict(Counter(r.error or f"HTTP {r.status}" for r in rs if r.failed)
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
        s["errors_per_s"].append(round(sum(1 for r in g if r.failed) / bucket, 2))
        lat = sorted(r.latency_ms for r in g if r.error is None)
        for p in PCTS:
            s[f"p{p}_ms"].append(_r(nearest_rank(lat, p)))
        s["max_ms"].append(_r(lat[-1]) if lat else None)
        if timed:
            lag = sorted(r.lag_ms for r in g)
            s["lag_p50_ms"].append(_r(nearest_rank(lag, 50)))
            s["lag_p99_ms"].append(_r(nearest_rank(lag, 99)))
            s["lag_max_ms"].append(_r(lag[-1]) if lag else None)
    # what the schedule asked for, by due time
    due = [0] * count
    for r in rs:
        i = int(r.due // bucket)
        if 0 <= i < count:
            due[i] += 1
    s["scheduled_rps"] = [round(d / bucket, 2) for d in due] if timed else []
    return {"bucket_s": bucket, **s}
