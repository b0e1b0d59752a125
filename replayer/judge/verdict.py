"""Thresholds and the verdict: ``load_thresholds(path)`` then ``evaluate(thresholds, summary)``.

A thresholds file is a JSON object of limits, each ``max_<metric>`` or ``min_<metric>``::

    {"max_p95_ms": 200, "max_error_rate": 0.01, "max_status_mismatch_rate": 0.0,
     "max_body_mismatch_rate": 0.0, "min_rps": 50, "max_lag_p99_ms": 5,
     "per_endpoint": true, "min_endpoint_requests": 20}

Latency, error and mismatch limits apply to the whole run and, with ``per_endpoint`` (the
default), to each endpoint with at least ``min_endpoint_requests`` requests, so a regression on
one small endpoint is not averaged away. ``max_memory_growth_mib_per_hour`` limits the growth
of every watched series of the target (``--watch-pid``, ``--watch``; ``replayer.judge.health``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from replayer.judge import correlation_report
from replayer.judge.health import HEALTH_LIMITS, health_checks

__all__ = ["Check", "ThresholdsError", "evaluate", "load_thresholds", "parse_thresholds"]

LATENCY = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
RATES = ("error_rate", "status_mismatch_rate", "body_mismatch_rate")
RUN_ONLY = ("rps", "lag_p99_ms", *correlation_report.METRICS)  # correlation: counts
METRICS = LATENCY + RATES + RUN_ONLY
OPTIONS = {"per_endpoint": bool, "min_endpoint_requests": int}


class ThresholdsError(ValueError):
    """A thresholds file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Check:
    metric: str
    bound: str  # "max" | "min"
    limit: float
    scope: str  # "all" or an endpoint
    value: float | None
    ok: bool

    def line(self) -> str:
        op = "<=" if self.bound == "max" else ">="
        shown = "n/a" if self.value is None else f"{self.value:g}"
        state = "PASS" if self.ok else "FAIL"
        return f"{state} {self.metric} [{self.scope}] = {shown} (limit {op} {self.limit:g})"


def load_thresholds(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThresholdsError(f"{path}: {exc.strerror}") from None
    return parse_thresholds(data, path)


def parse_thresholds(data: bytes | str, name: str = "thresholds") -> dict:
    try:
        t = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ThresholdsError(f"{name}: not JSON ({exc}); expected e.g. "
                              '{"max_p95_ms": 200, "max_error_rate": 0.01}') from None
    if not isinstance(t, dict) or not t:
        raise ThresholdsError(f"{name}: expected a non-empty JSON object of limits")
    for key, value in t.items():
        if key in OPTIONS:
            if not isinstance(value, OPTIONS[key]):
                raise ThresholdsError(f"{name}: {key} must be {OPTIONS[key].__name__}")
            continue
        bound, _, metric = key.partition("_")
        if key not in HEALTH_LIMITS and (bound not in ("max", "min") or metric not in METRICS):
            raise ThresholdsError(
                f"{name}: unknown limit {key!r}; use max_ or min_ with one of {', '.join(METRICS)}"
                f", or {', '.join(HEALTH_LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ThresholdsError(f"{name}: {key} must be a non-negative number, got {value!r}")
    return t


def _value(stats: dict, metric: str, run: dict | None) -> float | None:
    if metric in LATENCY:
        return stats["latency_ms"].get(metric[:-3])
    if metric in RATES:
        return stats.get(metric) if "count" in stats else stats["totals"].get(metric)
    if metric == "rps":
        return run["totals"]["rps"]
    if metric == "lag_p99_ms":
        return (run.get("lag_ms") or {}).get("p99")
    if metric in correlation_report.METRICS:  # correlation hook
        return correlation_report.metric(run, metric)
    raise AssertionError(metric)


def evaluate(thresholds: dict, summary: dict) -> list[Check]:
    checks = []
    per_ep = thresholds.get("per_endpoint", True)
    min_n = thresholds.get("min_endpoint_requests", 20)
    for key, limit in thresholds.items():
        if key in OPTIONS or key in HEALTH_LIMITS:  # health: health_checks below
            continue
        bound, _, metric = key.partition("_")
        scopes = [("all", summary)]
        if per_ep and metric not in RUN_ONLY:
            scopes += [(ep, s) for ep, s in summary["endpoints"].items() if s["count"] >= min_n]
        for scope, stats in scopes:
            value = _value(stats if scope != "all" else summary, metric, summary)
            if value is None:
                ok = metric not in RUN_ONLY  # nothing measured: a rate or lag limit cannot hold
            else:
                ok = value <= limit if bound == "max" else value >= limit
            checks.append(Check(metric, bound, limit, scope, value, ok))
    return checks + health_checks(thresholds, summary)  # the watched series (issue 13)
