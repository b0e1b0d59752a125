"""--follow (shadow traffic): records XADDed to a live stream while the replay tails it reach the
target once each, in order per connection, and Ctrl-C (SIGINT) ends the run with a report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.support.replay import logging_server, read_log, traffic
from tests.support.servers import REPO
from tests.support.traffic import xadd_all

pytestmark = pytest.mark.slow

STREAM = "shop"


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_follow_mirrors_new_records_and_sigint_writes_the_report(redis_server, tmp_path):
    """Records older than the start are not sent; 600 records XADDed at ~400/s while it follows
    (2 workers, a filter and a header rewrite) reach the target exactly once each, in order per
    connection, soon after they were added; SIGINT then ends it with exit 0 and a report whose
    lag is measured from arrival."""
    client = redis_server.client()
    old = traffic(conns=5, total=20, rate=100, seed=1)
    xadd_all(client, STREAM, old)  # already in the stream: --follow starts after them
    records = traffic(conns=30, total=600, rate=1000, seed=2,
                      paths=lambda k: "/healthz" if k % 50 == 0 else f"/items/{k}")
    log, report, out = tmp_path / "target.jsonl", tmp_path / "report", tmp_path / "replay.log"
    with logging_server(log) as srv, open(out, "w") as out_f:
        p = subprocess.Popen(
            [sys.executable, "-m", "replayer.replay.cli", "--log-format", "json",
             "--source", redis_server.url, "--stream", STREAM, "--follow", "--workers", "2",
             "--target", srv.url, "--exclude", "^/healthz", "--progress-every", "1s",
             "--set-header", "Authorization: Bearer fresh", "--report", str(report)],
            cwd=REPO, stdout=out_f, stderr=subprocess.STDOUT)
        try:
            _wait_for(lambda: "replay.follow" in out.read_text(), 30, "the follower to start")
            for k in range(0, len(records), 20):  # about 400 records/s, as a live capture
                xadd_all(client, STREAM, records[k:k + 20])
                time.sleep(0.05)
            wanted = sum(1 for r in records if r.target != "/healthz")
            _wait_for(lambda: len(log.read_text().splitlines()) >= wanted, 30,
                      f"{wanted} requests at the target")
            time.sleep(0.5)  # a duplicate or a stray old record would show up by now
            # with --progress-every 1s a progress line comes within a second of the run's start;
            # the replay itself can be over sooner than that, so wait for it rather than race
            _wait_for(lambda: "replay.progress" in out.read_text(), 10, "a progress line")
            p.send_signal(signal.SIGINT)
            rc = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = out.read_text()
    assert rc == 0, text[-3000:]
    seen = read_log(log)
    ids = Counter(dict(r["headers"])["X-Rec"] for r in seen)
    assert set(ids.values()) == {1}, "a request was sent twice"
    assert set(ids) == {f"{r.conn}/{r.seq}" for r in records if r.target != "/healthz"}
    assert all(dict(r["headers"])["Authorization"] == "Bearer fresh" for r in seen)
    per_conn: dict[str, list[int]] = {}
    peers: dict[str, set] = {}
    for row in sorted(seen, key=lambda r: r["n"]):
        conn, seq = dict(row["headers"])["X-Rec"].split("/")
        per_conn.setdefault(conn, []).append(int(seq))
        peers.setdefault(conn, set()).add(row["peer"])
    assert all(v == sorted(v) for v in per_conn.values()), "out of order within a connection"
    assert all(len(v) == 1 for v in peers.values()), "a connection was spread over sockets"
    assert "replay.stopping" in text and "replay.progress" in text
    summary = json.loads((report / "summary.json").read_text())
    assert summary["totals"]["sent"] == len(seen) and summary["totals"]["errors"] == 0
    assert summary["plan"]["skipped"] == {"excluded": len(records) - len(seen)}
    assert summary["plan"]["connections"] == 30
    assert summary["follow"]["lag_is"] == "send time - arrival at the replayer"
    assert 0 <= summary["scheduler_lag_ms"]["p50"] < 50, summary["scheduler_lag_ms"]
    assert (report / "report.html").exists()


def test_follower_resumes_after_a_redis_restart():
    """The follower reading a real Redis that is down for 2 s mid-stream counts the errors and goes on
    from the last id it read: every record dealt exactly once, each connection to one worker."""
    import threading

    from replayer.engine.dealer import Dealer
    from replayer.engine.follow import Follower, start_id
    from replayer.engine.plan import Schedule
    from replayer.engine.rewrite import Rules
    from sidecar.common.redis_client import connect
    from tests.support.redis_server import RedisServer

    records = traffic(conns=12, total=200, rate=1000, seed=3)
    got: list[tuple[int, str, str]] = []
    with RedisServer(appendonly=True) as srv:
        client = connect(srv.url)
        xadd_all(srv.client(), STREAM, records[:1])  # the stream exists; this one is "old"
        f = Follower(client, STREAM, after_id=start_id(client, STREAM))
        dealer = Dealer(Rules(), Schedule(), 2)

        def follow() -> None:  # as the master deals what the follower reads
            for item in f.records(time.time()):
                dealt = dealer.deal(*item) if item is not None else None
                if dealt is not None:
                    got.append((dealt[0], dealt[1].conn, dict(dealt[1].headers)["X-Rec"]))
        t = threading.Thread(target=follow, daemon=True)
        t.start()
        xadd_all(srv.client(), STREAM, records[1:100])
        _wait_for(lambda: len(got) >= 99, 10, "the first half")
        srv.stop()  # down longer than redis-py's own retries: the follower's loop retries
        time.sleep(2)
        srv.start()
        xadd_all(srv.client(), STREAM, records[100:])
        _wait_for(lambda: len(got) >= 199, 30, "the second half")
        time.sleep(0.3)
        f.stop()
        t.join(5)
    assert f.redis_errors >= 1
    assert sorted(r for _, _, r in got) == sorted(f"{r.conn}/{r.seq}" for r in records[1:])
    workers_of: dict[str, set[int]] = {}
    for w, conn, _ in got:
        workers_of.setdefault(conn, set()).add(w)
    assert all(len(ws) == 1 for ws in workers_of.values())
    assert {min(ws) for ws in workers_of.values()} == {0, 1}
