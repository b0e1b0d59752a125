"""The record format round-trips losslessly through both encodings."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import orjson
import pytest

from sidecar.contract.record import SCHEMA_VERSION, Record, RecordError


def _rec(**kw) -> Record:
    base = dict(ts_ns=1_700_000_000_123_456_789, conn="node-a:42:7:1700000000000000000", seq=3,
                client="10.1.2.3:5555", method="POST", target="/p?q=%C3%A9&x=\xff",
                version="1.1", headers=[("Host", "a"), ("X-Raw", "caf\xe9\x00\xff"), ("Host", "b")],
                body=bytes(range(256)), body_len=256, status=201,
                resp_headers=[("Content-Type", "application/json")], resp_body=b'{"ok":1}',
                resp_body_len=8, latency_us=1234)
    base.update(kw)
    return Record(**base)


def _as_redis(fields: dict) -> dict[bytes, bytes]:
    """What a bytes-returning redis client gives back for a hash of these fields."""
    out = {}
    for k, v in fields.items():
        if isinstance(v, int):
            v = str(v).encode()
        elif isinstance(v, str):
            v = v.encode()
        out[k.encode()] = v
    return out


def test_stream_fields_round_trip_binary_and_latin1():
    """Every byte value in bodies, header values and the target survives to_fields/from_fields."""
    rec = _rec(truncated=True, body_len=10_000, tls=True)
    assert Record.from_fields(_as_redis(rec.to_fields())) == rec


def test_json_round_trip_and_base64_bodies():
    """JSON keeps bodies as base64 and reads back equal; the schema version is on every line."""
    rec = _rec()
    doc = orjson.loads(rec.to_json())
    assert doc["v"] == SCHEMA_VERSION and "body" not in doc and doc["body_b64"]
    assert Record.from_json(rec.to_json()) == rec


def test_unknown_schema_version_is_a_clear_error():
    """A record of another schema version is refused with a message naming both versions."""
    fields = _as_redis(_rec().to_fields())
    fields[b"v"] = b"99"
    with pytest.raises(RecordError, match="v99 is not supported"):
        Record.from_fields(fields)
    doc = orjson.loads(_rec().to_json())
    doc["v"] = 0
    with pytest.raises(RecordError, match="v0"):
        Record.from_json(doc)


def test_missing_field_is_a_record_error():
    """An entry missing a field raises RecordError, not KeyError."""
    fields = _as_redis(_rec().to_fields())
    del fields[b"status"]
    with pytest.raises(RecordError):
        Record.from_fields(fields)


def test_request_bytes_rebuilds_the_wire_request():
    """request_bytes() gives the request line, headers in order, blank line and body."""
    rec = _rec(method="GET", target="/a", headers=[("Host", "x"), ("A", "1")], body=b"")
    assert rec.request_bytes() == b"GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n"


def test_from_exchange_sets_every_field_by_name():
    """Record.from_exchange (capture's per-request build) equals the keyword-built Record for
    values distinct in every field, so a field it forgets or mixes up fails here."""
    want = _rec(truncated=True, resp_truncated=True, tls=True, resp_body_len=9, status=502)
    parts = {f.name: getattr(want, f.name) for f in dataclasses.fields(Record)}
    direct = {k: parts.pop(k) for k in ("ts_ns", "conn", "seq", "client", "latency_us", "tls")}
    parts.pop("v")
    got = Record.from_exchange(SimpleNamespace(**parts), **direct)
    assert got == want and got.v == SCHEMA_VERSION
