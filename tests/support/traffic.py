"""Realistic JSON API traffic as records, and a writer thread that XADDs it to a stream.

``api_records(n, seed)`` makes an orders API's traffic: keep-alive connections from a pool of
clients (each with its own bearer token and user agent), GET/POST/PUT/DELETE on /orders with
JSON bodies of a few hundred bytes to a few KiB, request ids, timestamps moving forward. Seeded,
so tests and the benchmark see the same bytes every run.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from collections.abc import Iterator

import orjson
import redis

from sidecar.contract.record import Record
from sidecar.contract.streams import stream_key

__all__ = ["StreamWriter", "api_records", "xadd_all"]

_PRODUCTS = [(f"SKU-{1000 + i}", name, round(3.5 + i * 1.37, 2))
             for i, name in enumerate(["widget", "gadget", "sprocket", "gizmo", "flange", "bracket",
                                       "hinge", "valve", "gasket", "spindle"] * 20)]
_STATUSES = ["new", "paid", "packed", "shipped", "delivered", "cancelled"]
_AGENTS = ["python-requests/2.31.0", "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64) "
           "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36", "Go-http-client/1.1"]


def api_records(n: int, seed: int = 1, start_ns: int | None = None) -> Iterator[Record]:
    rng = random.Random(seed)
    t = start_ns if start_ns is not None else time.time_ns()
    clients = []
    for c in range(40):
        token = base64.urlsafe_b64encode(rng.randbytes(96)).decode().rstrip("=")
        clients.append({"ip": f"10.0.{c // 8}.{10 + c}", "agent": rng.choice(_AGENTS),
                        "token": f"eyJhbGciOiJSUzI1NiJ9.{token}", "conn": None, "seq": 0,
                        "customer": 1000 + c * 37})
    for _ in range(n):
        t += rng.randint(20_000, 400_000)  # 2.5k-50k requests/s
        cl = rng.choice(clients)
        if cl["conn"] is None or rng.random() < 0.02:
            cl["conn"] = f"node-a:4242:{rng.randint(8, 400)}:{t}"
            cl["seq"] = 0
            cl["port"] = rng.randint(30000, 60000)
        yield _one(rng, cl, t)
        cl["seq"] += 1


def _order(rng: random.Random, customer: int, oid: int) -> dict:
    items = []
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 6, 10])):
        sku, name, price = rng.choice(_PRODUCTS)
        items.append({"sku": sku, "name": name, "quantity": rng.randint(1, 4), "unit_price": price})
    return {"id": oid, "customer_id": customer, "status": rng.choice(_STATUSES), "currency": "EUR",
            "items": items, "total": round(sum(i["quantity"] * i["unit_price"] for i in items), 2),
            "shipping": {"method": rng.choice(["standard", "express"]), "country": "DE"},
            "created_at": f"2024-05-14T10:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"}


def _one(rng: random.Random, cl: dict, t: int) -> Record:
    oid = rng.randint(100_000, 999_999)
    kind = rng.random()
    body = b""
    if kind < 0.45:
        method, target, status = "GET", f"/orders/{oid}", rng.choice([200] * 9 + [404])
        resp = orjson.dumps(_order(rng, cl["customer"], oid)) if status == 200 else \
            b'{"error":"not_found","message":"order not found"}'
    elif kind < 0.65:
        method, target, status = "GET", f"/orders?customer={cl['customer']}&page={rng.randint(1, 5)}", 200
        resp = orjson.dumps({"orders": [_order(rng, cl["customer"], rng.randint(100_000, 999_999))
                                        for _ in range(rng.randint(1, 5))], "next": None})
    elif kind < 0.9:
        method, target, status = "POST", "/orders", rng.choice([201] * 19 + [422])
        order = _order(rng, cl["customer"], oid)
        body = orjson.dumps({k: order[k] for k in ("customer_id", "currency", "items", "shipping")})
        resp = orjson.dumps(order) if status == 201 else b'{"error":"invalid","field":"items"}'
    elif kind < 0.97:
        method, target, status = "PUT", f"/orders/{oid}/status", 200
        body = orjson.dumps({"status": rng.choice(_STATUSES)})
        resp = orjson.dumps(_order(rng, cl["customer"], oid))
    else:
        method, target, status, resp = "DELETE", f"/orders/{oid}", 204, b""
    headers = [("Host", "orders.internal:8080"), ("User-Agent", cl["agent"]),
               ("Accept", "application/json"), ("Authorization", f"Bearer {cl['token']}"),
               ("X-Request-Id", str(uuid.UUID(int=rng.getrandbits(128))))]
    if body:
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    resp_headers = [("Server", "gunicorn"), ("Date", "Tue, 14 May 2024 10:00:00 GMT"),
                    ("Content-Type", "application/json"), ("Content-Length", str(len(resp)))]
    return Record(ts_ns=t, conn=cl["conn"], seq=cl["seq"], client=f"{cl['ip']}:{cl['port']}",
                  method=method, target=target, version="1.1", headers=headers, body=body,
                  body_len=len(body), status=status, resp_headers=resp_headers, resp_body=resp,
                  resp_body_len=len(resp), latency_us=rng.randint(300, 40_000))


def xadd_all(client: redis.Redis, stream: str, records, batch: int = 500, *,
             publish_delay_ms: int | None = None) -> list[bytes]:
    """XADD every record (pipelined); the ids Redis gave them, in order.

    With ``publish_delay_ms`` the ids are set to capture time + that delay (as a live capture
    would get them) instead of the moment of the XADD; capture times must then increase.
    """
    key, ids, pipe = stream_key(stream), [], client.pipeline(transaction=False)
    for i, rec in enumerate(records, 1):
        if publish_delay_ms is None:
            pipe.xadd(key, rec.to_fields())
        else:
            pipe.xadd(key, rec.to_fields(), id=f"{rec.ts_ns // 1_000_000 + publish_delay_ms}-*")
        if i % batch == 0:
            ids += pipe.execute()
    ids += pipe.execute()
    return ids


class StreamWriter(threading.Thread):
    """XADDs ``records`` to a stream from a thread, ``rate`` records/s at most (None: flat out)."""

    def __init__(self, client: redis.Redis, stream: str, records, *, rate: float | None = None,
                 batch: int = 200) -> None:
        super().__init__(daemon=True, name="stream-writer")
        self.client, self.stream, self.records = client, stream, records
        self.rate, self.batch = rate, batch
        self.ids: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        key = stream_key(self.stream)
        start = time.monotonic()
        try:
            pipe = self.client.pipeline(transaction=False)
            for i, rec in enumerate(self.records, 1):
                pipe.xadd(key, rec.to_fields())
                if i % self.batch == 0:
                    self.ids += pipe.execute()
                    if self.rate:
                        ahead = i / self.rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
            self.ids += pipe.execute()
        except BaseException as exc:  # noqa: BLE001 -- reported by the test through .error
            self.error = exc
