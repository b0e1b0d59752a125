"""Workers started elsewhere: a master with --external-workers 2 and two rewind-replay-worker
processes started on their own replay the range exactly as local workers do."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from tests.support.replay import logging_server, read_log, run_replay, traffic, write_jsonl
from tests.support.servers import REPO, free_port

pytestmark = pytest.mark.slow


def _worker(port: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "replayer.engine.worker", "--master-host", "127.0.0.1",
         "--master-port", str(port), "--log-format", "json", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_external_workers_replay_like_local_ones(tmp_path):
    """Two workers started by hand get their shares over Locust messages: the target sees
    every request once, each connection in order, both workers exit 0, and the summary and
    verdict equal those of the same replay with local workers."""
    records = traffic(conns=40, total=2_000, rate=1000)
    path = write_jsonl(tmp_path / "records.jsonl", records)
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps({"max_error_rate": 0.0, "max_status_mismatch_rate": 0.0}))
    port = free_port()
    log = tmp_path / "target.jsonl"
    common = ("--source", str(path), "--mode", "max", "--thresholds", str(thresholds))
    with logging_server(log) as srv:
        workers = [_worker(port) for _ in range(2)]  # before the master: they retry until it is up
        try:
            rc, _, err = run_replay(*common, "--target", srv.url, "--external-workers", "2",
                                    "--master-bind-host", "127.0.0.1",
                                    "--master-bind-port", str(port),
                                    "--report", str(tmp_path / "ext"), timeout=120)
            outs = [w.communicate(timeout=30)[0] for w in workers]
        finally:
            for w in workers:
                w.kill()
        assert rc == 0, err[-3000:]
        assert [w.returncode for w in workers] == [0, 0], outs
        seen = read_log(log)
        log.write_text("")
        rc_local, _, err = run_replay(*common, "--target", srv.url, "--workers", "2",
                                      "--report", str(tmp_path / "local"))
    assert rc_local == 0, err[-3000:]
    ids = Counter(dict(r["headers"])["X-Rec"] for r in seen)
    assert len(ids) == len(records) and set(ids.values()) == {1}
    per_conn: dict[str, list[int]] = {}
    for row in sorted(seen, key=lambda r: r["n"]):
        conn, seq = dict(row["headers"])["X-Rec"].split("/")
        per_conn.setdefault(conn, []).append(int(seq))
    assert all(v == sorted(v) for v in per_conn.values())
    ext, loc = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("ext", "local"))
    for key in ("sent", "errors", "status_mismatch_rate", "body_mismatch_rate"):
        assert ext["totals"][key] == loc["totals"][key], key
    assert ext["verdict"] == {**loc["verdict"], "checks": ext["verdict"]["checks"]}
    assert [c["ok"] for c in ext["verdict"]["checks"]] == [c["ok"] for c in loc["verdict"]["checks"]]
    assert ext["plan"] == loc["plan"] and ext["totals"]["sent"] == 2_000


def test_worker_without_master_exits_3():
    """A worker whose master never answers gives up after --connect-timeout with exit code 3."""
    w = _worker(free_port(), "--connect-timeout", "5s")
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 3, out
    assert "replay.worker.no_master" in out
