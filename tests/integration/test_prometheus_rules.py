"""The Prometheus rules in ci/prometheus, checked and unit-tested by the real promtool (Debian's
`prometheus` package), and held to the metric names the code exports. A missing promtool fails
these tests: the rules are part of what CI proves."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sidecar.archive.metrics import ArchiveMetrics
from sidecar.capture.metrics import CaptureMetrics
from sidecar.redact.metrics import RedactMetrics
from sidecar.capture.tlslibs import TlsLibraries

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ci" / "prometheus" / "rewind-rules.yml"
RULES_TEST = ROOT / "ci" / "prometheus" / "rewind-rules.test.yml"

# Metrics that come from Prometheus itself or the kubelet, not from rewind's code.
EXTERNAL_METRICS = {"up", "container_cpu_usage_seconds_total"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan"}


@functools.cache
def promtool() -> str:
    """Path of promtool, or fail the test: it ships in Debian's `prometheus` package."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (ci/setup-host.sh)")
    return path


@functools.cache
def exported_metric_names() -> frozenset[str]:
    """Every sample name the capture sidecar and the archiver can export, taken from their
    registries (labelled counters included even before their first sample)."""
    names: set[str] = set()
    registries = [build(CollectorRegistry()).registry
                  for build in (CaptureMetrics, ArchiveMetrics, RedactMetrics)]
    tls = CollectorRegistry()  # the --tls gauges
    TlsLibraries(lambda path, pid: [], lambda pid: None, registry=tls)
    for registry in [*registries, tls]:
        for family in registry.collect():
            if family.type == "counter":
                names |= {family.name + "_total", family.name + "_created"}
            else:
                names.add(family.name)
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small lexer, enough for our exprs)."""
    names = set()
    for alternatives in re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names |= set(alternatives.split("|"))
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                       # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)                                # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)                               # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_rules_passes():
    """`promtool check rules` accepts the file (YAML shape, PromQL syntax, templates)."""
    out = subprocess.run([promtool(), "check", "rules", str(RULES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_pass():
    """The unit tests in rewind-rules.test.yml pass: each alert fires when it should and stays
    quiet on a healthy series, and the recording rules give the expected numbers."""
    out = subprocess.run([promtool(), "test", "rules", str(RULES_TEST)],
                         capture_output=True, text=True, timeout=120, cwd=RULES_TEST.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    assert "FAILED" not in out.stdout + out.stderr


def test_promtool_unit_tests_catch_a_wrong_expectation(tmp_path):
    """A wrong expected value fails promtool's run: the test above is not vacuous."""
    shutil.copy(RULES, tmp_path / RULES.name)
    broken = RULES_TEST.read_text().replace("value: 0.05", "value: 0.06")
    assert broken != RULES_TEST.read_text()
    (tmp_path / RULES_TEST.name).write_text(broken)
    out = subprocess.run([promtool(), "test", "rules", RULES_TEST.name],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode != 0
    assert "rewind:capture_event_drop_ratio:rate5m" in out.stdout + out.stderr


def test_every_alert_has_a_unit_test():
    """Each alert in the rules appears in at least one alert_rule_test."""
    tested = {t["alertname"] for case in yaml.safe_load(RULES_TEST.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert alerts - tested == set()


def test_rules_reference_only_exported_metrics():
    """Every metric a rule reads is exported by sidecar/capture/metrics.py or sidecar/archive/metrics.py
    (or is Prometheus' `up`), or is a recording rule of this file."""
    recorded = {r["record"] for r in rules() if "record" in r}
    known = exported_metric_names() | EXTERNAL_METRICS | recorded
    for rule in rules():
        unknown = metric_names_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown metrics {unknown}"


def test_metric_name_lexer():
    """The lexer finds metric names and skips functions, label names and keywords."""
    expr = ('sum by (job, reason) (rate(rewind_capture_requests_total{job="a b"}[5m])) / '
            'clamp_min(up offset 5m, 1) > bool 0 or rate({__name__=~"x_total|y_total"}[1m])')
    assert metric_names_in(expr) == {"rewind_capture_requests_total", "up", "x_total", "y_total"}
