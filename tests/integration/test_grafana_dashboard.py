"""The Grafana dashboard ci/grafana/rewind-dashboard.json: valid JSON with the golden signals,
every panel query accepted by the real promtool's PromQL parser (wrapped as recording rules,
since `promtool query` needs a server), and every metric it reads exported by the code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.parametrize("title,expr", exprs())
def test_queries_read_only_metrics_the_code_exports(title, expr):
    """Metric names come from sidecar/capture/metrics.py and sidecar/archive/metrics.py (process_*
    included: both registries carry the process collector), or from the scrape itself."""
    unknown = metric_names_in(as_promql(expr)) - exported_metric_names() - EXTERNAL_METRICS
    assert not unknown, f"{title}: {unknown}"
