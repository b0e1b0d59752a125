"""The record: one captured HTTP request with its response, versioned and binary-safe.

Two encodings, both lossless:

* Redis stream entry (``to_fields``/``from_fields``): a flat field map. Bodies are raw bytes
  (Redis values are binary-safe); headers are a JSON list of ``[name, value]`` pairs.
* JSON object (``to_json``/``from_json``): for archives and people (``zstdcat | jq``); bodies
  are base64 in ``body_b64``/``resp_body_b64``.

Header names and values are bytes on the wire. They are carried as strings holding one code
point per byte (latin-1), so any byte survives the round trip; ASCII, which is nearly all of
HTTP, reads as itself.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields

import orjson

__all__ = ["Headers", "Record", "RecordError", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

Headers = list[tuple[str, str]]


_new = object.__new__  # an instance without running __init__ (from_exchange sets every field)


class RecordError(ValueError):
    """A stream entry or JSON object that is not a record this code can read."""


@dataclass(slots=True)
class Record:
    """One request and its response, as the API saw them (see docs/capture.md, FIELDS)."""

    ts_ns: int  # wall-clock time of the request's first byte, ns since the epoch
    conn: str  # connection id, unique across sidecars: node:tgid:fd:accept_ns
    seq: int  # request number within the connection, from 0
    client: str  # peer address "ip:port" ("" when unknown)
    method: str
    target: str  # request target as sent: path and query
    version: str  # "1.0" or "1.1"
    headers: Headers = field(default_factory=list)
    body: bytes = b""  # stored body (de-chunked), at most --max-body bytes
    body_len: int = 0  # real body length, even when ``body`` was cut
    truncated: bool = False  # ``body`` is a prefix of the real body
    status: int = 0  # response status; 0 when the server never answered
    resp_headers: Headers = field(default_factory=list)
    resp_body: bytes = b""
    resp_body_len: int = 0
    resp_truncated: bool = False
    latency_us: int = 0  # last request byte read -> last response byte written
    tls: bool = False
    v: int = SCHEMA_VERSION

    @classmethod
    def from_exchange(cls, ex, *, ts_ns: int, conn: str, seq: int, client: str, latency_us: int,
                      tls: bool) -> Record:
        """The record of one parsed exchange (capture's build, once per request).

        ``ex`` carries the request and response fields under Record's own names (``method`` ...
        ``resp_truncated``: ``sidecar.capture.httpstream.Exchange``); the rest come as keywords.
        Every field is set by name, as ``Record(ts_ns=..., ...)`` would, but that call costs
        about 1.4 us more per request on the capture path (ci/bench/sidecar_cpu.py): CPython
        3.11 passes a class's keyword arguments through a dict. A field added to Record and not
        set here fails loudly (AttributeError on read; tests/unit/test_record.py pins it)."""
        r = _new(cls)
        r.v = SCHEMA_VERSION
        r.ts_ns = ts_ns
        r.conn = conn
        r.seq = seq
        r.client = client
        r.method = ex.method
        r.target = ex.target
        r.version = ex.version
        r.headers = ex.headers
        r.body = ex.body
        r.body_len = ex.body_len
        r.truncated = ex.truncated
        r.status = ex.status
        r.resp_headers = ex.resp_headers
        r.resp_body = ex.resp_body
        r.resp_body_len = ex.resp_body_len
        r.resp_truncated = ex.resp_truncated
        r.latency_us = latency_us
        r.tls = tls
        return r

    # -- Redis stream entry ------------------------------------------------------------
    def to_fields(self) -> dict[str, bytes | str | int]:
        """Flat field map for XADD; bodies stay raw bytes."""
        return {
            "v": self.v,
            "ts_ns": self.ts_ns,
            "conn": self.conn.encode("latin-1"),
            "seq": self.seq,
            "client": self.client.encode("latin-1"),
            "method": self.method.encode("latin-1"),
            "target": self.target.encode("latin-1"),
            "version": self.version.encode("latin-1"),
            "headers": orjson.dumps(self.headers),
            "body": self.body,
            "body_len": self.body_len,
            "truncated": int(self.truncated),
            "status": self.status,
            "resp_headers": orjson.dumps(self.resp_headers),
            "resp_body": self.resp_body,
            "resp_body_len": self.resp_body_len,
            "resp_truncated": int(self.resp_truncated),
            "latency_us": self.latency_us,
            "tls": int(self.tls),
        }

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes]) -> Record:
        """Inverse of ``to_fields`` for an entry read back with a bytes-returning client."""
        try:
            f = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
            version = int(f["v"])
            if version != SCHEMA_VERSION:
                raise RecordError(f"record schema v{version} is not supported (this is v{SCHEMA_VERSION})")
            return cls(
                v=version,
                ts_ns=int(f["ts_ns"]),
                conn=_text(f["conn"]),
                seq=int(f["seq"]),
                client=_text(f["client"]),
                method=_text(f["method"]),
                target=_text(f["target"]),
                version=_text(f["version"]),
                headers=_pairs(orjson.loads(f["headers"])),
                body=bytes(f["body"]),
                body_len=int(f["body_len"]),
                truncated=bool(int(f["truncated"])),
                status=int(f["status"]),
                resp_headers=_pairs(orjson.loads(f["resp_headers"])),
                resp_body=bytes(f["resp_body"]),
                resp_body_len=int(f["resp_body_len"]),
                resp_truncated=bool(int(f["resp_truncated"])),
                latency_us=int(f["latency_us"]),
                tls=bool(int(f["tls"])),
            )
        except RecordError:
            raise
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise RecordError(f"not a rewind record: {exc!r}") from exc

    # -- JSON (archive, people) --------------------------------------------------------
    def to_json(self) -> bytes:
        """One JSON object, bodies base64 (``body_b64``, ``resp_body_b64``)."""
        d = asdict(self)
        d["body_b64"] = base64.b64encode(d.pop("body")).decode()
        d["resp_body_b64"] = base64.b64encode(d.pop("resp_body")).decode()
        return orjson.dumps(d)

    @classmethod
    def from_json(cls, data: bytes | str | dict) -> Record:
        try:
            d = dict(data) if isinstance(data, dict) else orjson.loads(data)
            if int(d.get("v", -1)) != SCHEMA_VERSION:
                raise RecordError(
                    f"record schema v{d.get('v')} is not supported (this is v{SCHEMA_VERSION})"
                )
            d["body"] = base64.b64decode(d.pop("body_b64"))
            d["resp_body"] = base64.b64decode(d.pop("resp_body_b64"))
            d["headers"] = _pairs(d["headers"])
            d["resp_headers"] = _pairs(d["resp_headers"])
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in d.items() if k in known})
        except RecordError:
            raise
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise RecordError(f"not a rewind record: {exc!r}") from exc

    # -- helpers -----------------------------------------------------------------------
    def request_bytes(self) -> bytes:
        """The request as it would go on the wire with the stored (de-chunked) body.

        Equal to what the client sent when the request had a Content-Length (or no body)
        and was not truncated.
        """
        head = f"{self.method} {self.target} HTTP/{self.version}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        return (head + "\r\n").encode("latin-1") + self.body


def _text(v: bytes | str) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else v


def _pairs(items: list) -> Headers:
    return [(str(k), str(v)) for k, v in items]
