"""Realistic captured JSON API traffic for the replay benchmarks, written as an exported range.

``write_range(path, total, conns=300, rate=1000)`` writes ``total`` records, one a line, in the
exported-file format ``rewind-replay --source FILE`` reads (``rewind-inspect export``'s lines:
``sidecar.contract.archive_lines.record_line``), zstd-compressed when the name ends in ``.zst``.
Records are in capture order, ``rate`` a second overall, spread over ``conns`` keep-alive
connections (a connection's requests are consecutive turns of one client); the mix is a JSON
API's: GET of a user, a list with paging, an order, POST of an order with a JSON body, a PUT, a
DELETE; answers are JSON documents of 150 B to 2 KB with ids, timestamps and lists, a few 404s
and 201s, headers a browser or SDK sends (Authorization, User-Agent, Accept, trace ids).

    python ci/bench/replay_data.py --total 200000 --out /tmp/range-200k.jsonl.zst
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import orjson
import zstandard

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sidecar.contract.archive_lines import record_line  # noqa: E402
from sidecar.contract.record import Record  # noqa: E402

__all__ = ["write_range"]

T0_NS = 1_760_000_000_000_000_000
AGENTS = ("okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
          "python-requests/2.32.3", "Dart/3.4 (dart:io)")


def _user(rnd: random.Random, uid: int) -> dict:
    return {"id": uid, "name": f"user-{uid}", "email": f"user{uid}@example.com",
            "created_at": f"2025-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}T10:2{rnd.randint(0, 9)}:00Z",
            "plan": rnd.choice(("free", "pro", "team")), "active": rnd.random() < 0.9,
            "tags": [f"t{rnd.randint(1, 40)}" for _ in range(rnd.randint(0, 4))]}


def _order(rnd: random.Random, oid: int) -> dict:
    return {"id": oid, "status": rnd.choice(("new", "paid", "shipped")),
            "total_cents": rnd.randint(100, 90000), "currency": "EUR",
            "lines": [{"sku": f"SKU-{rnd.randint(1000, 9999)}", "qty": rnd.randint(1, 5),
                       "price_cents": rnd.randint(100, 20000)} for _ in range(rnd.randint(1, 4))],
            "updated_at": f"2026-11-0{rnd.randint(1, 9)}T0{rnd.randint(0, 9)}:15:00Z"}


def _exchange(rnd: random.Random) -> tuple[str, str, bytes, int, dict | list]:
    """(method, target, request body, status, answer document) of one request."""
    x = rnd.random()
    if x < 0.35:
        uid = rnd.randint(1, 50000)
        return "GET", f"/api/v1/users/{uid}", b"", 200, _user(rnd, uid)
    if x < 0.55:
        page = rnd.randint(1, 20)
        return ("GET", f"/api/v1/users?page={page}&per_page=5", b"", 200,
                {"page": page, "items": [_user(rnd, rnd.randint(1, 50000)) for _ in range(5)]})
    if x < 0.75:
        oid = rnd.randint(1, 10**6)
        if rnd.random() < 0.05:
            return "GET", f"/api/v1/orders/{oid}", b"", 404, {"error": "not_found", "id": oid}
        return "GET", f"/api/v1/orders/{oid}", b"", 200, _order(rnd, oid)
    if x < 0.9:
        order = _order(rnd, rnd.randint(1, 10**6))
        body = orjson.dumps({"lines": order["lines"], "currency": "EUR"})
        return "POST", "/api/v1/orders", body, 201, order
    if x < 0.97:
        uid = rnd.randint(1, 50000)
        body = orjson.dumps({"plan": rnd.choice(("free", "pro")), "tags": ["a", "b"]})
        return "PUT", f"/api/v1/users/{uid}", body, 200, _user(rnd, uid)
    return "DELETE", f"/api/v1/sessions/{rnd.randint(1, 10**5)}", b"", 204, {}


def records(total: int, conns: int = 300, rate: float = 1000.0, seed: int = 11):
    """``total`` Records in capture order (see the module docstring)."""
    rnd = random.Random(seed)
    seqs = [0] * conns
    agents = [rnd.choice(AGENTS) for _ in range(conns)]
    for k in range(total):
        c = rnd.randrange(conns)
        method, target, body, status, doc = _exchange(rnd)
        resp = orjson.dumps(doc) if status != 204 else b""
        headers = [("Host", "api.example.com"), ("User-Agent", agents[c]),
                   ("Accept", "application/json"), ("Authorization", f"Bearer tok{c:04d}"),
                   ("X-Request-Id", f"{rnd.getrandbits(64):016x}")]
        if body:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        resp_headers = [("Server", "api"), ("Content-Type", "application/json"),
                        ("Content-Length", str(len(resp)))]
        yield Record(ts_ns=T0_NS + int(k * 1e9 / rate), conn=f"api-0:{1000 + c}:{c}",
                     seq=seqs[c], client=f"10.1.{c // 250}.{c % 250}:{40000 + c}",
                     method=method, target=target, version="1.1", headers=headers, body=body,
                     body_len=len(body), status=status, resp_headers=resp_headers,
                     resp_body=resp, resp_body_len=len(resp),
                     latency_us=rnd.randint(300, 30000))
        seqs[c] += 1


def write_range(path: Path, total: int, *, conns: int = 300, rate: float = 1000.0) -> Path:
    """Write ``total`` records to ``path`` (zstd when it ends in .zst); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ms0 = T0_NS // 1_000_000
    with open(path, "wb") as raw:
        out = zstandard.ZstdCompressor(level=3).stream_writer(raw) if path.suffix == ".zst" \
            else raw
        for k, r in enumerate(records(total, conns, rate)):
            out.write(record_line(f"{ms0 + k}-0", r))
        if out is not raw:
            out.close()
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total", type=int, required=True, help="records to write")
    ap.add_argument("--conns", type=int, default=300, help="captured connections")
    ap.add_argument("--rate", type=float, default=1000.0, help="recorded requests/s")
    ap.add_argument("--out", required=True, help="file to write (.jsonl or .jsonl.zst)")
    args = ap.parse_args()
    write_range(Path(args.out), args.total, conns=args.conns, rate=args.rate)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
