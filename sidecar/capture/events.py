"""The Python mirror of ``struct event`` (bpf/capture.h) and the decoding of raw ring-buffer
records into ``Event`` tuples. tests/bpf/test_layout.py compiles capture.h with the probe's flags
and checks every field (offset, size, signedness), the decoder's format and the enums against
this module, so the two cannot drift unnoticed."""

from __future__ import annotations

import ctypes
import ipaddress
import struct
from enum import IntEnum
from typing import NamedTuple

CHUNK_SIZE = 16384  # bpf/capture.h CHUNK_SIZE; passed to the compiler by sidecar.capture.probe


class Kind(IntEnum):
    ACCEPT = 1
    DATA = 2
    CLOSE = 3
    SENDFILE = 4
    TLS_DATA = 5  # plaintext of an SSL_read/SSL_write call; pos in the plaintext stream


class Direction(IntEnum):
    INGRESS = 0  # read by the server: request bytes
    EGRESS = 1  # written by the server: response bytes


class EventHeader(ctypes.Structure):
    """``struct event`` without its ``data`` array (the fixed part every event carries)."""

    _fields_ = [
        ("ts_ns", ctypes.c_uint64),
        ("pos", ctypes.c_uint64),
        ("total", ctypes.c_uint64),
        ("aux", ctypes.c_uint64),
        ("aux2", ctypes.c_int64),
        ("tgid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("len", ctypes.c_uint32),
        ("kind", ctypes.c_uint16),
        ("dir", ctypes.c_uint16),
        ("family", ctypes.c_uint16),
        ("port", ctypes.c_uint16),
        ("addr", ctypes.c_uint8 * 16),
        ("_pad", ctypes.c_uint32),
    ]


HEADER_SIZE = ctypes.sizeof(EventHeader)
_HEADER = struct.Struct("<QQQQqIiIHHHH16sI")
assert _HEADER.size == HEADER_SIZE


class Event(NamedTuple):
    """One ring-buffer record; the fields are ``struct event``'s, in its order, then the payload."""

    ts_ns: int  # kernel monotonic clock
    pos: int  # DATA: stream offset of data[0]; CLOSE: final request-stream offset
    total: int  # DATA: bytes of the syscall; CLOSE: final response-stream offset
    aux: int
    aux2: int
    tgid: int
    fd: int
    len: int  # payload bytes (len(data))
    kind: int
    dir: int
    family: int
    port: int
    addr: bytes
    pad: int
    data: bytes


_new_event = tuple.__new__  # a NamedTuple from a ready tuple, without its Python-level __new__


def decode(raw) -> Event:
    """One ring-buffer record (bytes, or a memoryview into the ring) -> Event.

    ``raw`` is at least HEADER_SIZE bytes; the payload is copied out of it."""
    fields = _HEADER.unpack_from(raw)
    return _new_event(Event, (*fields, bytes(raw[HEADER_SIZE:HEADER_SIZE + fields[7]])))


def peer(family: int, addr: bytes, port: int) -> str:
    """The peer as "ip:port" ("[v6]:port"), or "" when accept() gave no address."""
    if family == 2:
        return f"{ipaddress.IPv4Address(addr[:4])}:{port}"
    if family == 10:
        ip = ipaddress.IPv6Address(addr)
        if ip.ipv4_mapped:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{ip}]:{port}"
    return ""
