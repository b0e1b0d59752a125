"""The Grafana dashboard ci/grafana/rewind-dashboard.json: valid JSON with the golden signals,
every panel query accepted by the real promtool's PromQL parser (wrapped as recording rules,
since `promtool query` needs a server), and every metric it reads exported by the code (the
replay row's by rewind-replay's live metrics)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from replayer.engine.live_metrics import LATENCY_BUCKETS, LiveMetrics
from tests.integration.test_prometheus_rules import (
    EXTERNAL_METRICS,
    exported_metric_names,
    metric_names_in,
    promtool,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ci" / "grafana" / "rewind-dashboard.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))   # collapsed rows hold their panels
    return out


def exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query target."""
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def as_promql(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus accepts."""
    expr = re.sub(r"\$__(rate_)?interval|\$\{__(rate_)?interval\}", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def replay_metric_names() -> frozenset[str]:
    """Every sample name rewind-replay's live metrics export, read from a LiveMetrics registry
    after one summary and a progress with a plan (so labelled and lazily made series exist)."""
    registry = CollectorRegistry()
    live = LiveMetrics(registry)
    live.add("GET /x", requests=1, errors=1, bucket_counts=[1] + [0] * len(LATENCY_BUCKETS),
             latency_sum=0.001, lag_seconds=0.0)
    live.progress(1, 1)
    return frozenset(sample.name for family in registry.collect() for sample in family.samples)


def test_dashboard_shape():
    """Unique panel ids, no overlapping grid cells, a datasource variable, queries everywhere
    a panel shows metrics."""
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] in ("timeseries", "stat"):
            assert p["targets"], p["title"]
    assert "datasource" in {v["name"] for v in d["templating"]["list"]}


def test_golden_signals_are_on_the_dashboard():
    """Capture: request rate, drops, parse errors, queue depth, Redis up, CPU; archive: records/s,
    lag, pending."""
    text = " ".join(e for _, e in exprs())
    for metric in ("rewind_capture_requests_total", "rewind_capture_dropped_events_total",
                   "rewind_capture_dropped_records_total", "rewind_capture_parse_errors_total",
                   "rewind_capture_queue_depth", "rewind_capture_redis_up",
                   "process_cpu_seconds_total", "rewind_archive_records_total",
                   "rewind_archive_lag_seconds", "rewind_archive_pending_entries"):
        assert metric in text, metric


def test_every_query_parses(tmp_path):
    """Each expr, wrapped as a recording rule, passes `promtool check rules` (PromQL parser)."""
    found = exprs()
    assert len(found) > 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": as_promql(e)} for i, (_, e) in enumerate(found)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(found)} rules found" in out.stdout


def test_parse_check_rejects_bad_promql(tmp_path):
    """The wrapping catches a broken query: the test above is not vacuous."""
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [
        {"record": "d:q", "expr": as_promql("sum by (pod (rate(x[$__rate_interval]))")}]}]}))
    out = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0


def test_replay_row_shows_what_the_replay_exports():
    """The replay row reads requests and errors per endpoint, latency p50/p99 from the
    histogram's buckets, schedule lag and progress: every rewind_replay_* name the code exports
    except the counters' _created and the histogram's _count/_sum (rate() of requests_total is
    the count)."""
    text = " ".join(e for _, e in exprs())
    shown = {n for n in replay_metric_names()
             if not n.endswith(("_created", "_seconds_count", "_seconds_sum"))}
    assert shown == {"rewind_replay_requests_total", "rewind_replay_errors_total",
                     "rewind_replay_latency_seconds_bucket", "rewind_replay_schedule_lag_seconds",
                     "rewind_replay_sent_requests", "rewind_replay_planned_requests"}
    for name in shown:
        assert name in text, name
    assert "histogram_quantile(0.5," in text and "histogram_quantile(0.99," in text


@pytest.mark.parametrize("title,expr", exprs())
def test_queries_read_only_metrics_the_code_exports(title, expr):
    """Metric names come from sidecar/capture/metrics.py and sidecar/archive/metrics.py (process_*
    included: both registries carry the process collector), from rewind-replay's live metrics
    (replayer/engine/live_metrics.py), or from the scrape itself."""
    unknown = (metric_names_in(as_promql(expr)) - exported_metric_names() - replay_metric_names()
               - EXTERNAL_METRICS)
    assert not unknown, f"{title}: {unknown}"
