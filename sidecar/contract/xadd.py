"""The XADD of one record, RESP-encoded in one step, for the publisher's pipelined batches.

The bytes are exactly those of ``hiredis.pack_command((*head, *record.to_fields() pairs))``
(tests/unit/test_publisher_pack.py checks it), built without the field dict, the argument tuple
and the per-argument conversions: the field names and the command's head are encoded once,
each value is turned to bytes once, and one ``%`` format writes the command.
"""

from __future__ import annotations

import orjson

from sidecar.contract.record import Record

__all__ = ["FIELDS", "XaddPacker"]

# Record.to_fields() order; the stream entry's field names
FIELDS = ("v", "ts_ns", "conn", "seq", "client", "method", "target", "version", "headers", "body",
          "body_len", "truncated", "status", "resp_headers", "resp_body", "resp_body_len",
          "resp_truncated", "latency_us", "tls")


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


class XaddPacker:
    """``pack(record)`` -> the RESP bytes of ``XADD <head...> <field> <value> ...``."""

    def __init__(self, head: tuple[bytes, ...]) -> None:
        self._prefix = b"*%d\r\n" % (len(head) + 2 * len(FIELDS)) + b"".join(map(_bulk, head))
        # field name as a bulk string, then the value's bulk-string header; (length, value) go in
        self._fmt = b"".join(_bulk(name.encode()) + b"$%d\r\n%b\r\n" for name in FIELDS)

    def pack(self, r: Record) -> bytes:
        vals = (
            b"%d" % r.v,
            b"%d" % r.ts_ns,
            r.conn.encode("latin-1"),
            b"%d" % r.seq,
            r.client.encode("latin-1"),
            r.method.encode("latin-1"),
            r.target.encode("latin-1"),
            r.version.encode("latin-1"),
            orjson.dumps(r.headers),
            r.body,
            b"%d" % r.body_len,
            b"1" if r.truncated else b"0",
            b"%d" % r.status,
            orjson.dumps(r.resp_headers),
            r.resp_body,
            b"%d" % r.resp_body_len,
            b"1" if r.resp_truncated else b"0",
            b"%d" % r.latency_us,
            b"1" if r.tls else b"0",
        )
        args = [0] * (2 * len(vals))  # length, value, length, value ...
        args[0::2] = map(len, vals)
        args[1::2] = vals
        return self._prefix + self._fmt % tuple(args)
