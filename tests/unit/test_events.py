"""Decoding ring-buffer records into events."""

from __future__ import annotations

import struct

from sidecar.capture.events import HEADER_SIZE, Kind, decode, peer


def _raw(kind, data=b"", **kw):
    addr = kw.get("addr", bytes(16))
    hdr = struct.pack("<QQQQqIiIHHHH16sI", kw.get("ts", 5), kw.get("pos", 7), kw.get("total", 9),
                      kw.get("aux", 0), kw.get("aux2", -1), 42, 3, len(data), kind,
                      kw.get("dir", 0), kw.get("family", 0), kw.get("port", 0), addr, 0)
    return hdr + data + b"\0" * 5  # ring-buffer records are padded to 8 bytes


def test_data_event_payload_is_exactly_len_bytes():
    """The payload is cut at ``len`` even when the record carries padding."""
    ev = decode(_raw(Kind.DATA, b"GET / HTTP/1.1\r\n", pos=100, total=16, dir=1))
    assert (ev.kind, ev.tgid, ev.fd, ev.pos, ev.total, ev.dir) == (Kind.DATA, 42, 3, 100, 16, 1)
    assert ev.data == b"GET / HTTP/1.1\r\n"
    assert HEADER_SIZE == 80


def test_peer_formats():
    """IPv4, IPv6, v4-mapped v6 and a missing address render as a client string."""
    assert peer(2, bytes([10, 0, 0, 7]) + bytes(12), 5000) == "10.0.0.7:5000"
    v6 = bytes(15) + b"\x01"
    assert peer(10, v6, 80) == "[::1]:80"
    mapped = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    assert peer(10, mapped, 81) == "127.0.0.1:81"
    assert peer(0, bytes(16), 0) == ""
