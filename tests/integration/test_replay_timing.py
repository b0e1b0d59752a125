"""Timing: recorded mode keeps to the schedule (lag p99 <= 5 ms), a slow target does not lower
the offered rate (open loop), and rps mode holds its rate within 2 % over 30 s."""

from __future__ import annotations

import json

import pytest

from tests.support.replay import logging_server, run_replay, traffic, write_jsonl
from tests.support.servers import nginx

pytestmark = pytest.mark.slow


def replay(tmp_path, path, url, *args) -> dict:
    rc, _, err = run_replay("--source", str(path), "--target", url,
                            "--report", str(tmp_path / "r"), *args)
    assert rc == 0, err[-3000:]
    return json.loads((tmp_path / "r" / "summary.json").read_text())


@pytest.fixture(scope="module")
def nginx_target():
    with nginx() as srv:
        yield srv


# Speed 4 on a 1,000 requests/s range (4,000/s) is beyond two shared cores: the workers saturate
# (about 3,400/s reached, lag grows); see docs/replay.md, OVERHEAD. Speed 4 is shown on 250/s.
@pytest.mark.parametrize(("speed", "rate"), [(1, 1000), (4, 250)])
def test_recorded_mode_lag(tmp_path, nginx_target, speed, rate):
    """A recorded range replayed at speed 1 and 4 (1,000 requests/s sent): schedule lag
    p99 <= 5 ms and the achieved rate is the recorded rate times the speed."""
    total = 3000
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=100, total=total, rate=rate))
    s = replay(tmp_path, path, nginx_target.url, "--speed", str(speed), "--workers", "2")
    assert s["totals"]["sent"] == total and s["totals"]["errors"] == 0
    assert s["lag_ms"]["p99"] <= 5.0, s["lag_ms"]
    assert s["totals"]["rps"] == pytest.approx(rate * speed, rel=0.05)


def test_slow_target_keeps_offered_rate(tmp_path):
    """A target answering in 100 ms gets the recorded 1,000 requests/s all the same: requests of
    other connections never wait for a slow answer."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=300, total=3000, rate=1000))
    with logging_server(tmp_path / "log.jsonl", "--delay", "0.1") as srv:
        s = replay(tmp_path, path, srv.url, "--workers", "2")
    assert s["totals"]["sent"] == 3000 and s["totals"]["errors"] == 0
    assert s["latency_ms"]["p50"] >= 100
    assert s["totals"]["rps"] == pytest.approx(1000, rel=0.05)
    assert s["waited_for_connection"] == 0
    assert s["lag_ms"]["p99"] <= 20, s["lag_ms"]


def test_busy_connection_waits_are_counted(tmp_path):
    """When one captured connection's next request is due before the slow answer to the last one
    arrived, it is sent after the answer (one connection, in order) and the wait is reported."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=5, total=200, rate=200))  # 25 ms apart
    with logging_server(tmp_path / "log.jsonl", "--delay", "0.1") as srv:
        s = replay(tmp_path, path, srv.url)
    assert s["totals"]["sent"] == 200
    assert s["waited_for_connection"] > 150
    assert s["lag_ms"]["p99"] > 100  # honest: total lag shows the waits
    assert s["scheduler_lag_ms"]["p99"] <= 20  # the scheduler itself was on time


def test_rps_mode_holds_rate(tmp_path, nginx_target):
    """--mode rps 500 looping a 2,000-request range for 30 s: the rate is within 2 %."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=50, total=2000, rate=1000))
    s = replay(tmp_path, path, nginx_target.url, "--mode", "rps", "--rps", "500", "--loop",
               "--duration", "30s", "--workers", "2")
    assert s["totals"]["errors"] == 0
    assert s["totals"]["sent"] == pytest.approx(15_000, rel=0.02)
    assert s["totals"]["rps"] == pytest.approx(500, rel=0.02)
