"""Filters, rewrites, schedules and the split between workers, without any process."""

from __future__ import annotations

import re

import pytest

from replayer.engine.dealer import build_plan
from replayer.engine.plan import Schedule, endpoint_name
from replayer.engine.rewrite import Rules, parse_header
from sidecar.contract.record import Record


def rec(k: int, conn: str = "c0", method: str = "GET", target: str = "/a", headers=None,
        body: bytes = b"", truncated: bool = False, ts_ms: int | None = None) -> Record:
    ts = 1_000_000_000_000 + (k if ts_ms is None else ts_ms) * 1_000_000
    return Record(ts_ns=ts, conn=conn, seq=k, client="", method=method, target=target,
                  version="1.1", headers=headers or [("Host", "old")], body=body,
                  truncated=truncated, status=200)


def test_rewrites_headers_and_host():
    """Framing and dropped headers go, set replaces in place of the old, add appends, Host set."""
    r = rec(0, headers=[("Host", "old"), ("Authorization", "Bearer x"), ("X-A", "1"),
                        ("Content-Length", "3"), ("Cookie", "a"), ("Cookie", "b")], body=b"abc")
    rules = Rules(drop_headers=frozenset({"x-a"}), set_headers=[("Authorization", "Bearer y")],
                  add_headers=[("X-New", "z")], host="t:80")
    req = rules.apply(r)
    assert req.headers == [("Host", "t:80"), ("Cookie", "a"), ("Cookie", "b"),
                           ("Authorization", "Bearer y"), ("X-New", "z")]
    assert req.body == b"abc"
    assert Rules().apply(r).headers[0] == ("Host", "old")


@pytest.mark.parametrize(("rules", "record", "reason"), [
    (Rules(methods=frozenset({"GET"})), rec(0, method="POST"), "method"),
    (Rules(include=[re.compile("^/api")]), rec(0, target="/other"), "not_included"),
    (Rules(exclude=[re.compile("^/health")]), rec(0, target="/healthz?x"), "excluded"),
    (Rules(drop_if_header=frozenset({"authorization"})),
     rec(0, headers=[("authorization", "s")]), "secret"),
    (Rules(), rec(0, truncated=True), "truncated"),
    (Rules(), rec(0, headers=[("Upgrade", "websocket")]), "upgrade"),
])
def test_filters_give_a_reason(rules, record, reason):
    """Each filter skips with its own reason."""
    assert rules.apply(record) == reason


def test_schedules():
    """recorded divides offsets by speed, rps spaces steps evenly, max makes all due at once."""
    records = [rec(k, ts_ms=10 * k) for k in range(5)]
    assert [s.due for s in build_plan(records, Rules(), Schedule("recorded", 2.0), 1).shards[0]] \
        == pytest.approx([0, 0.005, 0.01, 0.015, 0.02])
    assert [s.due for s in build_plan(records, Rules(), Schedule("rps", rate=100), 1).shards[0]] \
        == pytest.approx([0, 0.01, 0.02, 0.03, 0.04])
    assert {s.due for s in build_plan(records, Rules(), Schedule("max"), 1).shards[0]} == {0}


def test_split_keeps_connections_whole_and_balanced():
    """Every step lands on exactly one worker, a connection never spans two, loads are even."""
    records = [rec(k, conn=f"c{k % 7}") for k in range(700)]
    plan = build_plan(records, Rules(), Schedule("max"), 3)
    idx = sorted(s.idx for shard in plan.shards for s in shard)
    assert idx == list(range(700))
    owners = {}
    for w, shard in enumerate(plan.shards):
        for s in shard:
            assert owners.setdefault(s.conn, w) == w
        assert [s.idx for s in shard] == sorted(s.idx for s in shard)
    assert sorted(len(s) for s in plan.shards) == [200, 200, 300]
    assert plan.connections == 7 and plan.steps == 700


def test_endpoint_names_fold_ids():
    assert endpoint_name("GET", "/users/u42/reactions?limit=1") == "GET /users/:id/reactions"
    assert endpoint_name("GET", "/") == "GET /"
    assert endpoint_name("POST", "/reactions") == "POST /reactions"


def test_parse_header():
    assert parse_header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")
    with pytest.raises(ValueError):
        parse_header("no colon")
