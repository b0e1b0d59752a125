"""Ramp mode finds a target's capacity: against a server throttled to 300 answers/s, the rate of
the last step that held ``p95<200ms,errors<1%`` is within 10 % of 300, and the run stops at the
first step that broke it."""

from __future__ import annotations

import json

import pytest

from tests.support.replay import logging_server, run_replay, traffic, write_jsonl

pytestmark = pytest.mark.slow

CAPACITY = 300


def test_ramp_finds_capacity(tmp_path):
    """Steps 200, 225, ... 400 requests/s of 3 s each on 2 workers: capacity 275 or 300,
    steps above the first broken one are never sent, and the report shows the steps."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(conns=150, total=1000, rate=1000))
    with logging_server(tmp_path / "log.jsonl", "--rate", str(CAPACITY)) as srv:
        rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--workers", "2",
                                "--mode", "ramp", "--ramp-start", "200", "--ramp-step", "25",
                                "--ramp-max", "400", "--step-duration", "3s",
                                "--slo", "p95<200ms,errors<1%", "--report", str(tmp_path / "r"),
                                timeout=120)
    assert rc == 0, err[-3000:]
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    ramp = s["ramp"]
    assert ramp["capacity_rps"] == pytest.approx(CAPACITY, rel=0.10), ramp["steps"]
    assert ramp["broken_at_rps"] == ramp["capacity_rps"] + 25
    assert not ramp["reached_max"] and "p95<200ms" in ramp["broken_by"][0]
    steps = ramp["steps"]
    assert [st["held"] for st in steps] == [True] * (len(steps) - 1) + [False]
    # that each step offers its rate is shown on a simulated clock (test_replay_pacing.py)
    # stopped at the first broken step: nothing due after it (plus the judging time) was sent
    last_due = max(st["step"] for st in steps) * 3 + 3
    assert s["totals"]["sent"] < sum(st["planned"] for st in steps) + 400 * 2
    assert all(t <= last_due + 2 for t in [s["series"]["t"][-1]])
    assert "replay.ramp_done" in err and "capacity_rps" in err
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Ramp" in html and "capacity" in html


def test_malformed_slo_is_one_line_exit_2(tmp_path):
    """A malformed --slo fails before any work: exit 2, one line naming the term, no traceback."""
    rc, out, err = run_replay("--source", str(tmp_path / "none.jsonl"), "--target",
                              "http://127.0.0.1:9", "--mode", "ramp", "--slo", "p95<200,errors<1%")
    assert rc == 2
    assert err.strip().count("\n") == 0 and "p95<200" in err and "Traceback" not in err
