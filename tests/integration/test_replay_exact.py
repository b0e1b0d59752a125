"""Replay delivers every recorded request exactly once, as recorded (after rewrites), in
per-connection order on one keep-alive connection, with 1, 2 and 4 Locust workers."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.support.replay import logging_server, read_log, run_replay, traffic, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    records = traffic(conns=300, total=10_000, rate=2000)
    path = write_jsonl(tmp_path_factory.mktemp("rec") / "records.jsonl", records)
    return records, path


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_each_request_once_in_order_with_rewrites(recorded, tmp_path, workers):
    """10,000 requests over 300 connections: the target's log has each exactly once, with the
    recorded method, target and body, the rewritten headers, and each connection's requests in
    recorded order on one TCP connection."""
    records, path = recorded
    log = tmp_path / "target.jsonl"
    with logging_server(log) as srv:
        rc, _, err = run_replay(
            "--source", str(path), "--target", srv.url, "--mode", "max",
            "--workers", str(workers), "--set-header", "Authorization: Bearer fresh",
            "--drop-header", "X-Drop", "--add-header", "X-Replay: 1",
            "--report", str(tmp_path / "report"))
        host = srv.url.split("//")[1]
    assert rc == 0, err[-3000:]
    seen = read_log(log)
    assert len(seen) == len(records)
    by_rec = {}
    for row in seen:
        rec_id = dict(row["headers"])["X-Rec"]
        assert rec_id not in by_rec, f"{rec_id} sent twice"
        by_rec[rec_id] = row
    peers = defaultdict(set)
    order = defaultdict(list)
    for r in records:
        row = by_rec[f"{r.conn}/{r.seq}"]
        assert (row["method"], row["target"], row["body"]) == (r.method, r.target, r.body)
        expected = [("Host", host), ("X-Rec", f"{r.conn}/{r.seq}"), ("Accept", "*/*"),
                    ("Authorization", "Bearer fresh"), ("X-Replay", "1")]
        if r.body:
            expected.append(("Content-Length", str(len(r.body))))
        assert [tuple(h) for h in row["headers"]] == expected
        peers[r.conn].add(row["peer"])
        order[r.conn].append((row["n"], r.seq))
    assert all(len(p) == 1 for p in peers.values()), "a connection was spread over sockets"
    for conn, pairs in order.items():
        assert [seq for _, seq in sorted(pairs)] == sorted(seq for _, seq in pairs), conn
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["totals"]["sent"] == 10_000 and summary["totals"]["errors"] == 0
    assert summary["plan"]["connections"] == 300
