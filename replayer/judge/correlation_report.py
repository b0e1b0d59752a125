"""The report's correlation section: ``section(...)`` for summary.json, ``html_section`` for
report.html, ``metric`` for the thresholds (``max_unresolved``, ``max_unexplained``).

From the workers' ``Correlator.summary()`` and the results: per endpoint, values carried,
requests that waited for a value (count, total and longest wait), unresolved dependencies (the
recorded value went out: its producer failed, did not hold it, or did not answer in time), the
recorded answers rewritten to expect the candidate's values (``explained``), and the status and
body mismatches left. A mismatch of a request with an unresolved dependency is explained by it;
every other one is ``unexplained``: what the release changed, or a value correlation missed.
"""

from __future__ import annotations

import math

import html
from collections import Counter, defaultdict


__all__ = ["METRICS", "html_section", "metric", "section"]

METRICS = ("unresolved", "unexplained")  # thresholds: max_unresolved, max_unexplained (counts)
_COUNTS = ("carried", "waited", "followed", "wait_ms_total", "unresolved", "made", "not_made",
           "explained")
EXAMPLES = 20  # unexplained mismatches listed


def section(worker_summaries: list[dict], results=(), learned: dict | None = None, *,
            enabled: bool) -> dict:
    """The summary.json section. The streaming engine's workers count mismatches themselves
    (``Correlator.judged``: ``mismatches`` and ``examples`` in their summaries); ``results``
    (Result records) is for callers that hold them."""
    eps: dict[str, dict] = defaultdict(lambda: dict.fromkeys((*_COUNTS, "wait_ms_max"), 0))
    unresolved_by: Counter = Counter()
    unresolved_idx: set[int] = set()
    jwt: Counter = Counter()
    relay_ms: list[float] = []
    unexplained: dict[str, dict] = {}
    examples: list[dict] = []
    shifted = relayed = evicted = 0
    for w in worker_summaries:
        for ep, c in w["endpoints"].items():
            e = eps[ep]
            for k in _COUNTS:
                e[k] += c[k]
            e["wait_ms_max"] = max(e["wait_ms_max"], c["wait_ms_max"])
        unresolved_by.update(w["unresolved"])
        unresolved_idx.update(w["unresolved_idx"])
        jwt.update(w["jwt"])
        relay_ms += w["relay_ms"]
        shifted += w["times_shifted"]
        relayed += w["relayed_in"]
        evicted += w["evicted"]
        for ep, m in (w.get("mismatches") or {}).items():
            e = eps[ep]
            for k in ("status_mismatches", "body_mismatches"):
                e[k] = e.get(k, 0) + m[k]
            if m["body"] or m["status"]:
                u = unexplained.setdefault(ep, {"status": {}, "body": 0})
                u["body"] += m["body"]
                for st, n in m["status"].items():
                    u["status"][int(st)] = u["status"].get(int(st), 0) + n
        for ex in w.get("examples") or ():
            if len(examples) < EXAMPLES:
                examples.append(ex)
    for r in results:
        if r.error is not None or (r.status_ok and r.body_ok is not False):
            continue
        e = eps[r.endpoint]
        e["status_mismatches" if not r.status_ok else "body_mismatches"] = e.get(
            "status_mismatches" if not r.status_ok else "body_mismatches", 0) + 1
        if r.idx in unresolved_idx:
            continue
        u = unexplained.setdefault(r.endpoint, {"status": {}, "body": 0})
        if not r.status_ok:
            u["status"][r.status] = u["status"].get(r.status, 0) + 1
        else:
            u["body"] += 1
        if len(examples) < EXAMPLES:
            examples.append({"idx": r.idx, "endpoint": r.endpoint, "status": r.status,
                             "diffs": list(r.diffs)})
    relay_ms.sort()
    return {
        "enabled": enabled, "learned": learned,
        "carried": sum(e["carried"] for e in eps.values()),
        "waited": sum(e["waited"] for e in eps.values()),
        "wait_ms_max": max((e["wait_ms_max"] for e in eps.values()), default=0),
        "followed": sum(e["followed"] for e in eps.values()),
        "order_timed_out": unresolved_by.pop("order_timed_out", 0),
        "unresolved": sum(unresolved_by.values()), "unresolved_by": dict(unresolved_by),
        "explained": sum(e["explained"] for e in eps.values()),
        "relayed": relayed,
        "relay_ms": {"count": len(relay_ms), "p50": nearest_rank(relay_ms, 50),
                     "p99": nearest_rank(relay_ms, 99), "max": relay_ms[-1] if relay_ms else None},
        "times_shifted": shifted, "jwt": dict(jwt), "evicted": evicted,
        "endpoints": {ep: {**e, "wait_ms_total": round(e["wait_ms_total"], 3)}
                      for ep, e in sorted(eps.items())},
        "unexplained": {"count": sum(sum(u["status"].values()) + u["body"]
                                     for u in unexplained.values()),
                        "endpoints": unexplained, "examples": examples},
    }


def metric(summary: dict, name: str) -> float | None:
    """A threshold's value: ``unresolved`` or ``unexplained`` (None: no correlation section)."""
    c = summary.get("correlation")
    if c is None:
        return None
    return c["unresolved"] if name == "unresolved" else c["unexplained"]["count"]


def html_section(s: dict, table) -> str:
    """The report.html part (``table(rows, head)`` is the report's table)."""
    c = s.get("correlation")
    if c is None:
        return ""
    if not c["enabled"]:
        return ("<h2>Correlation</h2><p>Off (--no-correlate): recorded ids, tokens and versions "
                "were sent as recorded.</p>")
    learned = c["learned"] or {}
    head = (f"<h2>Correlation</h2><p>{c['carried']} values carried into requests "
            f"({learned.get('bindings', 'n/a')} learned), {c['explained']} recorded answers "
            f"rewritten to expect the candidate's values, {c['waited']} requests waited for a "
            f"value (longest {c['wait_ms_max']:.1f} ms), {c['unresolved']} unresolved "
            f"{c['unresolved_by']}, {c['relayed']} producers' values relayed between workers, "
            f"{c['unexplained']['count']} mismatches unexplained.</p>")
    rows = [[ep, e["carried"], e["waited"], round(e["wait_ms_total"], 1),
             round(e["wait_ms_max"], 1), e["unresolved"], e["explained"],
             e.get("status_mismatches", 0), e.get("body_mismatches", 0),
             html.escape(str(c["unexplained"]["endpoints"].get(ep, "")))]
            for ep, e in c["endpoints"].items()]
    return head + table(rows, ["endpoint", "values carried", "waited", "wait ms total",
                               "wait ms max", "unresolved", "answers rewritten",
                               "status mismatches", "body mismatches", "unexplained"])


def nearest_rank(sorted_values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of an ascending list (None when it is empty)."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]
