"""Hypothesis strategies for HTTP/1.x traffic as the probe reports it: conversations of requests
and responses (pipelined, chunked, 1xx, HEAD, 204/304, close-delimited, upgrades, bad bytes),
cut into ring-buffer records (``struct event``) with lost chunks, TLS plaintext, sendfile,
several connections interleaved, and the tracker's housekeeping calls in between.

``operations()`` draws what one run of a tracker is fed; ``Sendfiles`` answers the sendfile
reads those operations refer to. Used by tests/unit/test_native_differential.py.
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from sidecar.capture.events import _HEADER, Direction, Kind

TGIDS = (700, 701)
T0 = 1_000_000_000  # first event timestamp (monotonic ns)
HANDSHAKE = bytes.fromhex("1603010200010001fc0303") + bytes(32)

_NAMES = [b"Host", b"User-Agent", b"Accept", b"Content-Type", b"X-Trace", b"Cookie",
          b"Authorization", b"connection", b"X-Empty", b"content-length", b"Transfer-Encoding"]
_VALUE_BYTES = bytes(range(0x20, 0x7f)) + bytes(range(0x80, 0x100)) + b"\t"


def event(kind: int, tgid: int, fd: int, ts: int, *, pos: int = 0, total: int = 0, aux: int = 0,
          aux2: int = 0, d: int = 0, data: bytes = b"", family: int = 0, port: int = 0,
          addr: bytes = b"") -> bytes:
    """One ``struct event`` (bpf/capture.h) as the probe emits it, with its payload."""
    return _HEADER.pack(ts, pos, total, aux, aux2, tgid, fd, len(data), kind, d, family, port,
                        addr.ljust(16, b"\0")[:16], 0) + data


@st.composite
def header(draw) -> bytes:
    name = draw(st.one_of(st.sampled_from(_NAMES),
                          st.text("abcXYZ-019", min_size=1, max_size=8).map(str.encode)))
    if name.lower() in (b"content-length", b"transfer-encoding"):
        name = b"X-" + name  # framing headers are the generator's to write
    value = draw(st.one_of(st.just(b""), st.binary(max_size=12).map(
        lambda b: bytes(_VALUE_BYTES[x % len(_VALUE_BYTES)] for x in b))))
    return name + b": " + value + b"\r\n"


@st.composite
def body_framing(draw, body: bytes, allow_none: bool = True) -> tuple[bytes, bytes]:
    """(framing header lines, encoded body) for ``body``."""
    kinds = ["length", "chunked"] + (["none"] if allow_none else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "length":
        return b"Content-Length: %d\r\n" % len(body), body
    if kind == "none":
        return b"", body
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=3)))
    parts = [body[a:b] for a, b in itertools.pairwise([0, *[c for c in cuts if c < len(body)],
                                                       len(body)])]
    out = b""
    for p in parts:
        if p:
            ext = draw(st.sampled_from([b"", b";x=1"]))
            out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    trailers = b"".join(draw(st.lists(header(), max_size=2)))
    return b"Transfer-Encoding: chunked\r\n", out + b"0\r\n" + trailers + b"\r\n"


@st.composite
def exchange(draw, last: bool) -> tuple[bytes, bytes]:
    """One request and its response (with 1xx before it), as bytes on the wire."""
    method = draw(st.sampled_from([b"GET"] * 12 + [b"POST"] * 8 + [b"HEAD"] * 4 + [
        b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"FOO", b"get"]))
    target = b"example.com:443" if method == b"CONNECT" else b"/" + draw(
        st.text("abc/?=&%-._~019", max_size=16)).encode()
    version = draw(st.sampled_from([b"1.1"] * 10 + [b"1.0", b"2.0"]))
    lines = b"".join(draw(st.lists(header(), max_size=4)))
    if draw(st.integers(0, 9)) == 0:
        lines += b"Expect: 100-continue\r\n"
    if draw(st.integers(0, 19)) == 0:
        lines += b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    body = draw(st.binary(max_size=40)) if draw(st.booleans()) else b""
    framing, wire_body = draw(body_framing(body, allow_none=False)) if body else (b"", b"")
    req = b"%s %s HTTP/%s\r\n%s%s\r\n%s" % (method, target, version, lines, framing, wire_body)

    interim = b"".join(draw(st.lists(st.sampled_from([
        b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]),
        max_size=2)))
    status = draw(st.sampled_from([200] * 6 + [201, 204, 304, 404, 413, 500, 101, 0]))
    rlines = b"".join(draw(st.lists(header(), max_size=3)))
    rbody = draw(st.binary(max_size=40)) if draw(st.booleans()) else b""
    if draw(st.integers(0, 5)) == 0:
        rbody = b"xHTTP/1.1 200 OK\r\n" + rbody  # a status line inside a body
    if method == b"HEAD" or status in (204, 304, 101):
        rframing = b"Content-Length: %d\r\n" % len(rbody) if draw(st.booleans()) else b""
        wire_rbody = b""
    else:
        rframing, wire_rbody = draw(body_framing(rbody, allow_none=last))
    resp = b"%sHTTP/1.1 %03d X\r\n%s%s\r\n%s" % (interim, status, rlines, rframing, wire_rbody)
    return req, resp


def _need(pairs: list[tuple[bytes, bytes]]) -> list[int]:
    """For each response byte: request bytes read before the server wrote it."""
    need, read = [], 0
    for req, resp in pairs:
        read += len(req)
        need += [read] * len(resp)
    return need


def _mutate(data: bytes, draw) -> bytes:
    if not data or draw(st.integers(0, 24)) != 0:
        return data
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]


class Sendfiles:
    """What ``read_sendfile`` finds for the sendfile events: file bytes by offset (``aux2``);
    an offset that is not there reads as None (file gone)."""

    def __init__(self) -> None:
        self.files: dict[int, bytes] = {}

    def read(self, ev) -> bytes | None:
        return self.files.get(ev.aux2)


@st.composite
def connection(draw, tgid: int, fd: int, files: Sendfiles, clock: list[int]) -> list[tuple]:
    """The operations of one connection: its events (and maybe a seed before them)."""
    n = draw(st.integers(1, 4))
    pairs = [draw(exchange(last=i == n - 1)) for i in range(n)]
    req = _mutate(b"".join(r for r, _ in pairs), draw)
    resp = _mutate(b"".join(s for _, s in pairs), draw)
    if draw(st.integers(0, 4)) == 0:  # the connection ends in the middle of a message
        req = req[:draw(st.integers(0, len(req)))]
        resp = resp[:draw(st.integers(0, len(resp)))]
    need = _need(pairs)
    mode = draw(st.sampled_from(["plain"] * 6 + ["tls", "tls_raw", "resumed", "seeded"]))
    kind = Kind.TLS_DATA if mode == "tls" else Kind.DATA
    ops: list[tuple] = []

    def ts() -> int:
        clock[0] += draw(st.integers(1, 5000))
        return clock[0]

    if mode == "seeded":
        ops.append(("seed", tgid, fd, "10.0.0.9:1", ts()))
    elif mode != "resumed":
        family = draw(st.sampled_from([2, 10, 10, 0]))
        addr = (bytes([10, 1, 2, 3]) if family == 2 else
                draw(st.sampled_from([bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3]),
                                      bytes(15) + b"\x01"])) if family == 10 else b"")
        ops.append(("event", event(Kind.ACCEPT, tgid, fd, ts(), family=family, port=40000 + fd,
                                   addr=addr)))
    if mode in ("tls", "tls_raw"):
        ops.append(("event", event(Kind.DATA, tgid, fd, ts(), data=HANDSHAKE,
                                   total=len(HANDSHAKE))))
    if mode == "tls_raw":
        req = resp = b""

    def pieces(data: bytes) -> list[tuple[int, int]]:
        cuts = draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=6))
        bounds = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
        return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    reqs, resps = pieces(req), pieces(resp)
    realistic = draw(st.integers(0, 3)) > 0
    read = 0
    while reqs or resps:
        resp_ok = bool(resps) and (not realistic or need[min(resps[0][1], len(need)) - 1] <= read
                                   if need else True)
        take_req = bool(reqs) and (not resp_ok or draw(st.booleans()))
        d = Direction.INGRESS if take_req else Direction.EGRESS
        a, b = (reqs if take_req else resps).pop(0)
        data = (req if take_req else resp)[a:b]
        if take_req:
            read = b
        if draw(st.integers(0, 19)) == 0:
            continue  # this chunk never reached userspace: a gap
        if d == Direction.EGRESS and kind == Kind.DATA and draw(st.integers(0, 7)) == 0:
            off = len(files.files) + 1000 * tgid + fd
            if draw(st.integers(0, 3)):
                files.files[off] = data if draw(st.integers(0, 5)) else data[:-1]
            ops.append(("event", event(Kind.SENDFILE, tgid, fd, ts(), pos=a, total=len(data),
                                       aux=9, aux2=off, d=1)))
            continue
        ops.append(("event", event(kind, tgid, fd, ts(), pos=a, total=len(data), d=d,
                                   data=data)))
    if draw(st.integers(0, 5)):
        ops.append(("event", event(Kind.CLOSE, tgid, fd, ts(), pos=len(req), total=len(resp),
                                   aux=int(mode == "tls"))))
    return ops


@st.composite
def operations(draw) -> tuple[list[tuple], Sendfiles]:
    """Several connections' operations interleaved (each in its own order), housekeeping calls
    and odd records among them."""
    files, clock = Sendfiles(), [T0]
    conns = []
    for i in range(draw(st.integers(1, 3))):
        tgid = TGIDS[i % 2]
        fd = draw(st.sampled_from([5, 6, 7]))  # the same fd twice: reuse, or a lost close
        conns.append(draw(connection(tgid, fd, files, clock)))
    ops: list[tuple] = []
    while any(conns):
        c = draw(st.sampled_from([c for c in conns if c]))
        ops.append(c.pop(0))
        extra = draw(st.integers(0, 80))
        if extra == 0:
            ops.append(("expire", clock[0] + draw(st.sampled_from([0, 10_000, 10**9]))))
        elif extra == 1:
            ops.append(("forget", draw(st.sampled_from([set(), {TGIDS[0]}, {TGIDS[1]}]))))
        elif extra == 2:
            ops.append(("event", draw(st.binary(max_size=90))))  # not a whole event header
        elif extra == 3:
            ops.append(("event", event(draw(st.sampled_from([0, 9, 2])), TGIDS[0], 5, clock[0],
                                       d=draw(st.sampled_from([1, 2, 7])), data=b"x")))
    return ops, files
