"""Hand-made records for the correlation tests: one request and its answer, with defaults."""

from __future__ import annotations

import itertools

import orjson

from sidecar.contract.record import Record

_seq: dict[str, itertools.count] = {}
_clock = itertools.count(1)


def exchange(method: str, target: str, *, conn: str = "c1", headers=(), body=b"", json=None,
             form: str | None = None, status: int = 200, resp_headers=(), resp_body=b"",
             resp_json=None, ts_s: float | None = None, latency_us: int = 1000) -> Record:
    """A record at the next second (or ``ts_s``), numbered in order on its connection."""
    headers = list(headers)
    if json is not None:
        body = orjson.dumps(json)
        headers.append(("Content-Type", "application/json"))
    if form is not None:
        body = form.encode()
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    if body:
        headers.append(("Content-Length", str(len(body))))
    resp_headers = list(resp_headers)
    if resp_json is not None:
        resp_body = orjson.dumps(resp_json)
        resp_headers.append(("Content-Type", "application/json"))
    seq = next(_seq.setdefault(conn, itertools.count()))
    ts = ts_s if ts_s is not None else next(_clock)
    return Record(ts_ns=int(ts * 1e9), conn=conn, seq=seq, client="10.0.0.1:1", method=method,
                  target=target, version="1.1", headers=headers, body=body,
                  body_len=len(body), status=status, resp_headers=resp_headers,
                  resp_body=resp_body, resp_body_len=len(resp_body), latency_us=latency_us)
