"""Each timed mode end to end in real processes: recorded (at a speed), rps, and recorded against
a slow target send every request exactly once. The schedule itself is checked exactly on a
simulated clock (tests/unit/test_replay_pacing.py); how close to it real sends come on a machine
is ``make bench-replay``'s to measure, not a test's."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.support.replay import logging_server, read_log, run_replay, traffic, write_jsonl

pytestmark = pytest.mark.slow


def replay_once_each(tmp_path, records, *args: str, server_args=()) -> dict:
    """Replay ``records`` against a logging target; check each was sent exactly once."""
    path = write_jsonl(tmp_path / "rec.jsonl", records)
    log = tmp_path / "target.jsonl"
    with logging_server(log, *server_args) as srv:
        rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--workers", "2",
                                "--report", str(tmp_path / "r"), *args)
    assert rc == 0, err[-3000:]
    sent = Counter(dict(row["headers"])["X-Rec"] for row in read_log(log))
    assert sent == Counter(f"{r.conn}/{r.seq}" for r in records)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["totals"]["sent"] == len(records) and s["totals"]["errors"] == 0
    return s


@pytest.mark.parametrize("args", [["--speed", "4"], ["--mode", "rps", "--rps", "400"]],
                         ids=["recorded-speed-4", "rps"])
def test_timed_mode_sends_each_request_once(tmp_path, args):
    """Recorded mode at speed 4 and rps mode, 400 requests over 20 connections on 2 workers: the
    target sees each request exactly once, and the report counts them all."""
    replay_once_each(tmp_path, traffic(conns=20, total=400, rate=200), *args)


def test_slow_target_sends_each_once_and_reports_waits(tmp_path):
    """Against a target answering in 100 ms, with a connection's requests due 25 ms apart: each
    request is still sent once, and the report counts the waits for a busy connection."""
    s = replay_once_each(tmp_path, traffic(conns=5, total=100, rate=200),
                         server_args=("--delay", "0.1"))
    assert s["waited_for_connection"] > 0
