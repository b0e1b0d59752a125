"""The correlation part of `make bench-replay` (issue 15): what carrying values costs.

A stateful range: USERS users, each logs in on one connection (``GET /api/login``, answered
``{"token": ...}``) and then sends requests carrying ``Authorization: Bearer <token>`` on two
other connections, 20,000 requests in all; the dealing puts one of the two on the other
worker. The target is nginx serving static files, whose login file holds one candidate token,
so every later request gets a value substituted. Replayed in ``max`` mode (one pass: a loop
would replay the one-request login connections over and over) on 2 workers, with correlation
and with ``--no-correlate``, each twice, alternating (best of two):

- requests/s of both (the ratio is the cost of finalising each step: a rewrite and a re-build
  of its bytes, and of binding each login answer);
- the master's learning time per record (spent while planning, before the start);
- the relay: a login answered on one worker whose token is used on the other goes worker ->
  master -> worker; its latency (sent by the producing worker -> bound on the other) p50/p99.
"""

from __future__ import annotations

import json
from pathlib import Path

from sidecar.contract.record import Record

USERS = 200
T0_NS = 1_700_000_000_000_000_000


def stateful_range(total: int = 20_000, rate: float = 2000.0, users: int = USERS
                   ) -> list[Record]:
    out = []
    for k in range(total):
        p, i = k % users, k // users
        # in B's rounds the users go shifted by one: the dealing (a new connection to the
        # worker with the fewest steps) puts a user's A and B connections on different workers
        u = p if i % 2 else (p + 1) % users
        token = f"tok_{u:04d}_9f8a7b6c5d4e3f2a1b0c"
        if i == 0:
            conn, seq, target, headers = f"L{u:03d}", 0, f"/api/login?user={u}", [("Host", "x")]
            rb = json.dumps({"token": token, "user": u}).encode()
        else:
            conn, seq = f"A{u:03d}" if i % 2 else f"B{u:03d}", (i - 1) // 2
            target, rb = f"/api/data?n={i}", b'{"ok": true}'
            headers = [("Host", "x"), ("Authorization", f"Bearer {token}")]
        out.append(Record(ts_ns=T0_NS + int(k * 1e9 / rate), conn=conn, seq=seq,
                          client="10.0.0.1:1", method="GET", target=target, version="1.1",
                          headers=headers, body=b"", body_len=0, status=200, resp_headers=[
                              ("Content-Type", "application/json")], resp_body=rb,
                          resp_body_len=len(rb), latency_us=500))
    return out


def serve_files(www: Path) -> None:
    (www / "api").mkdir(parents=True, exist_ok=True)
    (www / "api" / "login").write_text('{"token": "tok_CANDIDATE_0123456789abcdefXY", "user": 0}')
    (www / "api" / "data").write_text('{"ok": true}')


def measure(replay, write_jsonl, url: str, work: Path, *, requests: int = 20_000,
            users: int = USERS, rounds: int = 2) -> dict:
    """``replay(source, url, report, *args)`` -> summary; runs both (best of ``rounds`` each)
    over ``requests`` requests of ``users`` users."""
    rng = write_jsonl(work / "stateful.jsonl", stateful_range(requests, users=users))
    out: dict = {}
    for rnd, (name, extra) in enumerate(rounds * (("correlate", ()), ("no_correlate",
                                                                  ("--no-correlate",)))):
        s = replay(rng, url, work / f"corr-{name}-{rnd}", "--mode", "max", "--workers", "2",
                   *extra)
        c = s["correlation"]
        if name in out and out[name]["rps"] >= s["totals"]["rps"]:
            continue
        out[name] = {"rps": s["totals"]["rps"], "sent": s["totals"]["sent"],
                     "errors": s["totals"]["errors"], "carried": c["carried"],
                     "unresolved": c["unresolved"], "waited": c["waited"],
                     "relayed": c["relayed"], "relay_ms": c["relay_ms"],
                     "learned": c["learned"]}
        print(f"  {name}: {s['totals']['rps']:,.0f} requests/s, carried {c['carried']:,}, "
              f"relayed {c['relayed']} (p50 {c['relay_ms']['p50']} ms)", flush=True)
    out["ratio"] = round(out["correlate"]["rps"] / out["no_correlate"]["rps"], 3)
    return out


def rows(c: dict) -> list[str]:
    on, off = c["correlate"], c["no_correlate"]
    learned = on["learned"] or {}
    r = on["relay_ms"]
    return [f"| correlation, `max` 2 workers, stateful range: requests/s with / without "
            f"(ratio) | {on['rps']:,.0f} / {off['rps']:,.0f} ({c['ratio']}) | |",
            f"| correlation: values carried; learning us/record (master, while planning); relay "
            f"worker->master->worker ms p50 / p99 / max ({r['count']} producers) | "
            f"{on['carried']:,}; {learned.get('learn_us_per_record')}; {r['p50'] and round(r['p50'], 2)}"
            f" / {r['p99'] and round(r['p99'], 2)} / {r['max'] and round(r['max'], 2)} | |"]
