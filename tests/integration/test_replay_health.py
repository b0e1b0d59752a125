"""Target health during a real replay (replayer.watch): a loopback server that keeps 200 KB
per request fails max_memory_growth_mib_per_hour by --watch-pid while a steady one passes, and
--watch-prometheus reads a real Prometheus scraping the target (a bad query counted, not fatal)."""

from __future__ import annotations

import json
import sys
from html import escape

import pytest

from tests.support.prometheus import prometheus
from tests.support.replay import run_replay, traffic, write_jsonl
from tests.support.servers import REPO, start_server

pytestmark = pytest.mark.slow

# Measured here (load average ~10): the leak (600 x 200 KB kept, 24 -> 139 MiB over ~9 s of
# watching) grows ~64,000 MiB an hour; the steady server's RSS wobbles by a fraction of a MiB,
# ~180 MiB an hour. The limit sits about 16x from the one and 20x from the other.
LIMIT_MIB_PER_HOUR = 4 * 1024


def health_server(*extra: str):
    script = REPO / "tests" / "support" / "health_server.py"
    return start_server("health-http", lambda port, _: [sys.executable, str(script), "--port",
                                                        str(port), *extra])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("health")
    path = write_jsonl(folder / "rec.jsonl", traffic(conns=10, total=600, rate=200))
    (folder / "thresholds.json").write_text(json.dumps(
        {"max_memory_growth_mib_per_hour": LIMIT_MIB_PER_HOUR}))
    return path, folder / "thresholds.json"


def replay_watching(tmp_path, recorded, srv, *watch: str):
    path, thresholds = recorded
    rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--mode", "rps",
                            "--rps", "200", "--thresholds", str(thresholds),
                            "--report", str(tmp_path / "r"), "--watch-interval", "0.2s", *watch)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    return rc, summary, err


def test_a_leaking_target_fails_the_memory_growth_limit(tmp_path, recorded):
    """200 KB kept per request: exit 1, the failing line names the pid's series, the report
    shows the table and the plot."""
    with health_server("--leak-bytes", "200000") as srv:
        pid = srv.popen.pid
        rc, s, err = replay_watching(tmp_path, recorded, srv, "--watch-pid", str(pid))
    assert rc == 1, err[-2000:]
    failing = [c["line"] for c in s["verdict"]["checks"] if not c["ok"]]
    assert len(failing) == 1, failing
    assert failing[0].startswith(f"FAIL memory_growth_mib_per_hour [pid {pid} (python") and \
        "rss]" in failing[0]
    series = s["health"]["series"][0]
    assert series["end"] - series["start"] > 100e6  # 600 x 200 KB kept
    assert series["growth_per_hour"] / 2**20 > LIMIT_MIB_PER_HOUR
    assert s["health"]["load_starts_at_s"] > 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Target health</h2>" in html and escape(failing[0]) in html


def test_a_steady_target_passes(tmp_path, recorded):
    """The same replay against the same server keeping nothing: exit 0, growth under the limit."""
    with health_server() as srv:
        rc, s, err = replay_watching(tmp_path, recorded, srv, "--watch-pid", str(srv.popen.pid))
    assert rc == 0, [c["line"] for c in s["verdict"]["checks"]] or err[-2000:]
    series = s["health"]["series"][0]
    assert series["samples"] >= 10
    assert abs(series["growth_per_hour"]) / 2**20 < LIMIT_MIB_PER_HOUR


def test_watch_prometheus_reads_the_target_through_a_real_prometheus(tmp_path, recorded):
    """Prometheus scrapes the leaking target's /metrics every second; --watch of its
    process_resident_memory_bytes gives a series that fails the limit, and a second --watch
    that is not PromQL is counted and logged as failed without stopping the run."""
    with health_server("--leak-bytes", "200000") as srv, prometheus([f"127.0.0.1:{srv.port}"]) \
            as prom:
        query = 'process_resident_memory_bytes{job="targets"}'
        prom.wait_for(query)
        rc, s, err = replay_watching(tmp_path, recorded, srv, "--watch-prometheus", prom.url,
                                     "--watch", query, "--watch", "rate(")
    assert rc == 1, err[-2000:]
    good, bad = s["health"]["sources"]
    assert good["label"] == query and good["failures"] == 0 and len(good["series"]) == 1
    assert bad["label"] == "rate(" and bad["samples"] == 0 and bad["failures"] >= 5
    assert "parse error" in bad["last_error"]
    assert '"event": "watch.failed"' in err
    lines = {c["scope"]: c["line"] for c in s["verdict"]["checks"]}
    assert lines[good["series"][0]].startswith("FAIL memory_growth_mib_per_hour")
    assert lines["rate("].startswith("UNKNOWN memory_growth_mib_per_hour [rate(] = n/a")
