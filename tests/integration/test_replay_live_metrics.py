"""A real Prometheus scrapes a running replay (--metrics-port) against a real loopback server
and sees rewind_replay_requests_total reach the number of requests sent, the latency histogram
count with it, and the progress gauges."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.support.prometheus import prometheus
from tests.support.replay import logging_server, traffic, write_jsonl
from tests.support.servers import REPO, free_port

pytestmark = pytest.mark.slow


def test_prometheus_sees_the_replay_live(tmp_path):
    """1,000 requests at 250/s: while the run goes, the scraped sent gauge rises; at the end the
    requests counter summed over endpoints equals summary.json's sent, as does the histogram's
    _count, and planned is the plan's size."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=20, total=1000, rate=250))
    port = free_port()
    with logging_server(tmp_path / "log.jsonl") as srv, prometheus([f"127.0.0.1:{port}"]) as prom:
        replay = subprocess.Popen(
            [sys.executable, "-m", "replayer.replay.cli", "--log-format", "json", "--source",
             str(path), "--target", srv.url, "--mode", "rps", "--rps", "250", "--workers", "2",
             "--report", str(tmp_path / "r"), "--metrics-port", str(port), "--metrics-addr",
             "127.0.0.1", "--metrics-linger", "3s"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            mid = prom.wait_for("rewind_replay_sent_requests > 0 < 1000", timeout=60)
            _, err = replay.communicate(timeout=120)
        finally:
            replay.kill()
        assert replay.returncode == 0, err[-2000:]
        sent = json.loads((tmp_path / "r" / "summary.json").read_text())["totals"]["sent"]
        assert sent == 1000 and 0 < float(mid[0]["value"][1]) < 1000

        def last(expr: str) -> float:  # the run is over: the series' last scraped value
            result = prom.query(f"sum(last_over_time({expr}[5m]))")
            return float(result[0]["value"][1]) if result else -1.0
        deadline = time.monotonic() + 10
        while last("rewind_replay_requests_total") != sent and time.monotonic() < deadline:
            time.sleep(0.5)
        assert last("rewind_replay_requests_total") == sent
        assert last("rewind_replay_latency_seconds_count") == sent
        assert last("rewind_replay_errors_total") == 0
        assert last("rewind_replay_planned_requests") == 1000
        assert last("rewind_replay_sent_requests") == sent
        endpoints = prom.query("last_over_time(rewind_replay_requests_total[5m])")
        assert {r["metric"]["endpoint"] for r in endpoints} == {"GET /items/:id/:id",
                                                                 "POST /items/:id/:id"}
