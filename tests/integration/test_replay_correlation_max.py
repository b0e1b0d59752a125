"""Correlation on the streaming engine in ``max`` mode on 2 real Locust workers, against the real
stateful sample API on loopback: users log in on one connection and use their bearer token on
two others, one on each worker, each request ordered after the user's previous answer on the
other connection. The range is long enough that the master deals and ships a user's request
before it has read the request that follows it (the feeder sends batches of 200 steps)."""

from __future__ import annotations

import json

from sidecar.contract.record import Record
from tests.support.replay import run_replay, write_jsonl
from tests.support.servers import stateful_api

USERS, ROUNDS = 20, 40  # 820 requests: more than one batch of steps per worker
T0_NS = 1_700_000_000_000_000_000


def token(u: int) -> str:
    return f"Rk{u:02d}x9QpL7mZ2vT4wB8nC1dF6hJ3sYe"  # recorded; the candidate makes its own


def chained_range() -> list[Record]:
    """Logins, then per round one request of each user, alternating its two connections; in
    even rounds the users go in an order shifted by one, so the dealing (fewest steps first)
    puts a user's two connections on different workers."""
    out = []
    k = 0

    def add(conn, seq, method, target, headers, body, resp_body):
        nonlocal k
        out.append(Record(ts_ns=T0_NS + k * 500_000, conn=conn, seq=seq, client="10.0.0.1:1",
                          method=method, target=target, version="1.1", headers=headers,
                          body=body, body_len=len(body), status=200,
                          resp_headers=[("Content-Type", "application/json")],
                          resp_body=resp_body, resp_body_len=len(resp_body), latency_us=200))
        k += 1

    for u in range(USERS):
        body = json.dumps({"user": f"u{u}"}).encode()
        add(f"L{u:02d}", 0, "POST", "/api/login",
            [("Host", "api"), ("Content-Type", "application/json")], body,
            json.dumps({"token": token(u), "user": f"u{u}"}).encode())
    for i in range(ROUNDS):
        for p in range(USERS):
            u = p if i % 2 == 0 else (p + 1) % USERS
            conn = f"A{u:02d}" if i % 2 == 0 else f"B{u:02d}"
            add(conn, i // 2, "GET", f"/api/orders?page={i}",
                [("Host", "api"), ("Authorization", f"Bearer {token(u)}")], b"",
                b'{"orders":[]}\n')
    return out


def test_max_mode_two_workers_ordered_chains_do_not_stall(tmp_path):
    """Every request follows its user's previous answer on the other worker's connection and
    carries the candidate's token: none waits to the --correlate-wait deadline (a producer
    shipped before its follower was dealt still announces its answer), nothing is unresolved,
    and the candidate answers every request as recorded."""
    rng = write_jsonl(tmp_path / "chained.jsonl", chained_range())
    with stateful_api() as api:
        code, _out, err = run_replay(
            "--source", str(rng), "--target", api.url, "--report", str(tmp_path / "r"),
            "--mode", "max", "--workers", "2", "--correlate-wait", "3s", timeout=300)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    c = s["correlation"]
    assert code == 0, (c, err[-3000:])
    assert s["totals"]["sent"] == USERS * (ROUNDS + 1), s["totals"]
    assert c["learned"]["ordered"] >= USERS * (ROUNDS - 1), c["learned"]
    assert c["order_timed_out"] == 0 and c["unresolved"] == 0, c
    assert c["followed"] > 0 and c["relayed"] > 0, c
    assert c["carried"] == USERS * ROUNDS, c
    assert s["totals"]["status_mismatch_rate"] == 0, s["status_codes"]
