"""HTTP/1.0/1.1 reassembly for one server-side TCP connection: two byte streams -> exchanges.

The reference implementation: rewind-capture runs its native port (sidecar/capture/native/
http1.c, on the same llhttp), held to it by tests/unit/test_native_differential.py.

The bytes the server read are requests, the bytes it wrote are responses. Each stream goes
through its own llhttp parser (``httptools``); this module only pairs the messages, stores their
bodies (at most ``max_body`` bytes each, the real length always kept) and turns every way a stream
can go wrong into a state (``broken``) and a count, never an exception.

What llhttp cannot know from one stream alone is handled here:

* a response to HEAD has no body whatever its headers say: its header block is cut out of the
  stream and parsed alone (``_head_block``), then the parser is replaced;
* interim 1xx responses are skipped; the final response pairs with the oldest request whose
  headers are complete, even when that request's body is still arriving (early 413, 100-continue);
* ``101 Switching Protocols`` (or a 2xx to CONNECT) ends HTTP on the connection (``"upgraded"``);
* a body read until the connection closes (HTTP/1.0 style) is finished by ``close()``;
* bytes the kernel dropped (``lost``) inside a body of known length become a truncated body;
  anywhere else they end the parsing (``"lost_bytes"``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import httptools
import structlog

from sidecar.capture.metrics import CaptureMetrics
from sidecar.contract.record import Headers

__all__ = ["Exchange", "HttpConnectionParser"]

_ZEROS = bytes(65536)  # placeholder bytes fed for a gap inside a body
_new = object.__new__  # an instance without running __init__ (Exchange.of_request sets every field)
_HTTP = b"HTTP/"


@dataclass(slots=True)
class Exchange:
    """One request and its response as parsed from the wire (strings are latin-1 of the bytes)."""

    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: Headers
    body: bytes  # de-chunked, at most max_body bytes
    body_len: int  # real length, even when ``body`` was cut
    truncated: bool
    req_start_ns: int  # ts of the feed carrying the request's first byte
    req_end_ns: int  # ts of the feed carrying its last byte
    status: int = 0  # 0: no response (the connection ended first)
    resp_headers: Headers = field(default_factory=list)
    resp_body: bytes = b""
    resp_body_len: int = 0
    resp_truncated: bool = False
    resp_end_ns: int = 0  # ts of the feed carrying the response's last byte

    @classmethod
    def of_request(cls, *, method: str, target: str, version: str, headers: Headers,
                   req_start_ns: int) -> Exchange:
        """A request whose headers are complete: body and response still to come. Every field
        is set by name; the same call through ``Exchange(method=..., ...)`` costs about 0.3 us
        more per request, as CPython 3.11 passes a class's keyword arguments through a dict."""
        e = _new(cls)
        e.method = method
        e.target = target
        e.version = version
        e.headers = headers
        e.body = b""
        e.body_len = 0
        e.truncated = False
        e.req_start_ns = req_start_ns
        e.req_end_ns = 0
        e.status = 0
        e.resp_headers = []
        e.resp_body = b""
        e.resp_body_len = 0
        e.resp_truncated = False
        e.resp_end_ns = 0
        return e


class _Stop(Exception):
    """Raised in an llhttp callback to stop a parser after the connection was marked broken."""


class _Msg:
    """A request or response being received (a request is also its own queue entry).

    Class attributes are the defaults, so creating one per message stays cheap."""

    stored = length = 0  # body bytes kept / body bytes seen
    cut = False  # stop storing: cap reached or bytes lost
    hdr_done = False
    hdr_feed = 0  # bytes of the feeds that went by entirely inside the header block
    headers: Headers = ()  # decoded when the header block is complete
    ex: Exchange | None = None
    pair: _Msg | None = None  # response -> its request
    head = connect = interim = False
    raw_left = 0  # body bytes of an upgrade request that llhttp will not read
    req_done = resp_done = False

    def __init__(self, ts: int, flen: int) -> None:
        self.start = self.last = ts
        self.flen = flen  # length of the feed it began in: bounds its header block with hdr_feed
        self.url: list[bytes] = []
        self.raw: Headers = []  # header (then trailer) pairs as they arrive, decoded
        self.chunks: list[bytes] = []


class _Side:
    """One direction of the connection: its llhttp parser and the message it is filling."""

    def __init__(self, conn: HttpConnectionParser, part: str, cls) -> None:
        self.conn, self.part, self._cls = conn, part, cls
        self.max_body = conn._max_body
        self.msg: _Msg | None = None
        self.flen = 0  # length of the feed being parsed
        self.parser = cls(self)

    def reset(self) -> None:
        self.parser = self._cls(self)

    def feed(self, data) -> bytes | None:
        """Parse ``data``; return what follows an upgrade request, else None. Never raises."""
        was = self.msg
        self.flen = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as up:
            return bytes(data[up.args[0]:])
        except httptools.HttpParserError as exc:
            if not self.conn._dead:
                invalid = isinstance(exc, httptools.HttpParserInvalidMethodError)
                self.conn._break("invalid_method" if invalid else "invalid_" + self.part, exc)
            return None
        m = self.msg
        if m is not None and not m.hdr_done and m is was:  # bound what llhttp is buffering
            m.hdr_feed += len(data)
            if m.hdr_feed > self.conn._max_hdr:
                self.conn._break("header_too_large")
        return None

    # -- llhttp callbacks: kept small ------------------------------------------------------
    def on_message_begin(self) -> None:
        self.msg = _Msg(self.conn._ts, self.flen)

    def on_url(self, url: bytes) -> None:
        self.msg.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.msg.raw.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.conn._headers_done(self)

    def on_body(self, data: bytes) -> None:
        m = self.msg
        n = len(data)
        m.length += n
        if m.cut:
            return
        room = self.max_body - m.stored
        if n > room:
            data = data[:room]
            m.cut = True
            self.conn._m.truncated_bodies.labels(self.part).inc()
        if data:
            m.chunks.append(data)
            m.stored += len(data)

    def on_message_complete(self) -> None:
        self.conn._message_done(self)


class HttpConnectionParser:
    """Pairs the requests a server read with the responses it wrote, on one connection."""

    def __init__(self, *, max_body: int, max_header_bytes: int = 65536,
                 metrics: CaptureMetrics, log=None) -> None:
        if max_body < 0:
            raise ValueError(f"max_body must be >= 0 bytes, got {max_body}")
        if max_header_bytes <= 0:
            raise ValueError(f"max_header_bytes must be > 0, got {max_header_bytes}")
        self._max_body, self._max_hdr, self._m = max_body, max_header_bytes, metrics
        self._log = log if log is not None else structlog.get_logger()
        self._ts = 0  # ts_ns of the feed being parsed
        self._q = _Side(self, "request", httptools.HttpRequestParser)
        self._r = _Side(self, "response", httptools.HttpResponseParser)
        self._queue: deque[_Msg] = deque()  # requests with complete headers, not yet returned
        self._paired = 0  # how many at the head of the queue have their final response
        self._heads = 0  # HEAD requests still waiting for a response
        self._head_buf: bytearray | None = None  # a HEAD response's header block, arriving
        self._heading = False  # parsing that block alone
        self._dead = False  # broken or closed: ignore all further bytes
        self.broken: str | None = None

    @property
    def pending(self) -> int:
        """Requests parsed (headers complete) whose response has not completed."""
        return sum(1 for m in self._queue if not m.resp_done)

    # -- the four calls --------------------------------------------------------------------
    def feed_request(self, data: bytes, ts_ns: int) -> None:
        """Bytes the server read."""
        if self._dead or not data:
            return
        self._ts = ts_ns
        q = self._q
        while data and not self._dead:
            m = q.msg
            if m is not None and m.raw_left:  # the body of an upgrade request, read by us
                take = data[:m.raw_left]
                data = data[len(take):]
                m.raw_left -= len(take)
                q.on_body(take)
                if not m.raw_left:
                    self._message_done(q)
                continue
            data = q.feed(data)
            if data is not None:  # llhttp stopped after an upgrade request: go on with a new one
                q.reset()
        if q.msg is not None:
            q.msg.last = ts_ns

    def feed_response(self, data: bytes, ts_ns: int) -> list[Exchange]:
        """Bytes the server wrote; returns the exchanges now complete, in order (also those
        whose request finished after its response, or that a ``lost()`` gap finished)."""
        if not self._dead and data:
            self._feed_response(data, ts_ns)
        return self._ready() if self._paired else []

    def lost(self, direction: str, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` of one stream ("request"|"response") never arrived."""
        if self._dead or nbytes <= 0:
            return
        self._ts = ts_ns
        side = self._q if direction == "request" else self._r
        m = side.msg
        in_body = m is not None and m.hdr_done and not m.interim
        cl, te = _framing(m.headers) if in_body else (None, True)
        if te or (cl is None and side is self._q) or (cl is not None and nbytes > cl - m.length):
            self._break("lost_bytes")  # in headers, chunk framing, or past the body's end
            return
        m.cut = True  # the stored body is the true prefix before the gap
        if cl is None:  # a body read until the close: llhttp has nothing to count
            m.length += nbytes
            m.last = ts_ns
            return
        feed = self.feed_request if side is self._q else self._feed_response  # exchanges wait
        for off in range(0, nbytes, len(_ZEROS)):
            feed(_ZEROS[:min(len(_ZEROS), nbytes - off)], ts_ns)

    def close(self, ts_ns: int) -> list[Exchange]:
        """The connection ended: everything still held comes back (status 0 if unanswered)."""
        self._ts = ts_ns
        if not self._dead:
            r = self._r.msg
            if r is not None and r.pair is not None and _framing(r.headers) == (None, False):
                self._message_done(self._r)  # its body ran until the close
                r.pair.ex.resp_end_ns = r.last
            self._abandon("closed")
        self._dead = True
        out = self._ready()
        for m in self._queue:
            if m.ex.status == 0:
                self._m.unanswered.inc()
            out.append(m.ex)
        self._queue.clear()
        self._paired = 0
        return out

    # -- internals -------------------------------------------------------------------------
    def _feed_response(self, data: bytes, ts_ns: int) -> None:
        self._ts = ts_ns
        r, n, pos = self._r, len(data), 0
        if not self._heads and self._head_buf is None:  # the usual case: no HEAD in sight
            if r.feed(data) is not None:
                self._break("upgraded")
            pos = n
        view = memoryview(data)
        while pos < n and not self._dead:
            if self._head_buf is not None:
                pos = self._head_block(view, pos)
            elif r.msg is None and self._paired < len(self._queue) \
                    and self._queue[self._paired].head:
                self._head_buf = bytearray()
            else:
                # With a HEAD request waiting, stop wherever a status line may start, so that
                # its response is never read by a parser that would expect a body.
                end = _next_status_line(data, pos) if self._heads else n
                if r.feed(view[pos:end]) is not None:
                    self._break("upgraded")
                pos = end
        if r.msg is not None:
            r.msg.last = ts_ns

    def _head_block(self, view: memoryview, pos: int) -> int:
        """Collect a HEAD response's header block, parse it alone; return the next offset."""
        buf = self._head_buf
        old = len(buf)
        buf += view[pos:]
        i = buf.find(b"\r\n\r\n", max(0, old - 3))
        if i < 0 or i + 4 > self._max_hdr:
            if len(buf) > self._max_hdr:
                self._break("header_too_large")
            return len(view)
        self._head_buf = None
        r = self._r
        self._heading = True
        upgraded = r.feed(bytes(buf[:i + 4])) is not None
        self._heading = False
        if upgraded:
            self._break("upgraded")
        elif r.msg is not None and r.msg.hdr_done and not self._dead:
            self._message_done(r)  # llhttp now waits for a body that does not exist
            r.reset()
        return pos + i + 4 - old

    def _headers_done(self, side: _Side) -> None:
        m = side.msg
        if m.flen + m.hdr_feed + side.flen > self._max_hdr and _head_size(m) > self._max_hdr:
            self._break("header_too_large")
            raise _Stop
        m.hdr_done = True
        m.headers, m.raw = m.raw, []  # what arrives from now on is trailers
        p = side.parser
        if side is self._q:
            method = p.get_method().decode("latin-1")
            m.ex = Exchange.of_request(method=method, target=b"".join(m.url).decode("latin-1"),
                                       version=p.get_http_version(), headers=m.headers,
                                       req_start_ns=m.start)
            if method == "HEAD":
                m.head = True
                self._heads += 1
            elif method == "CONNECT":
                m.connect = True
            if p.should_upgrade() and not m.connect:  # llhttp will skip this request's body
                cl, te = _framing(m.headers)
                if te:
                    self._break("invalid_request")
                    raise _Stop
                m.raw_left = cl or 0
            self._queue.append(m)
            return
        status = p.get_status_code()
        if 100 <= status < 200 and status != 101:
            m.interim = True  # 100/102/103: not an answer
            return
        if self._paired >= len(self._queue):
            self._break("unpaired_response")
            raise _Stop
        req = self._queue[self._paired]
        if req.head and not self._heading:  # its answer began before the HEAD request was read
            self._break("unpaired_response")
            raise _Stop
        self._paired += 1
        self._heads -= req.head
        m.pair = req
        req.ex.status, req.ex.resp_headers = status, m.headers
        if status == 101 or (req.connect and status < 300):
            self._message_done(side)
            self._break("upgraded")
            raise _Stop

    def _message_done(self, side: _Side) -> None:
        m, side.msg = side.msg, None
        if m is None:
            return
        if m.raw and m.hdr_done:  # trailers of a chunked body: kept after the headers
            m.headers += m.raw
            m.raw = []
        if side is self._q:
            if m.raw_left:  # keep reading its body ourselves (feed_request)
                side.msg = m
                return
            ex = m.ex
            ex.body, ex.body_len, ex.truncated = b"".join(m.chunks), m.length, m.cut
            ex.req_end_ns, m.req_done = self._ts, True
        elif not m.interim:
            ex = m.pair.ex
            ex.resp_body, ex.resp_body_len, ex.resp_truncated = b"".join(m.chunks), m.length, m.cut
            ex.resp_end_ns, m.pair.resp_done = self._ts, True

    def _abandon(self, reason: str | None) -> None:
        """Give up the messages half-received; keep what they had, flagged truncated."""
        q, r, head = self._q.msg, self._r.msg, self._head_buf
        self._q.msg = self._r.msg = self._head_buf = None
        for m in (q, r):
            if m is None:
                continue
            if reason:
                self._m.incomplete.labels(reason).inc()
            target = m if m is q else m.pair
            if not m.hdr_done or target is None:
                continue
            cl = _framing(m.headers)[0] or 0
            body, length = b"".join(m.chunks), max(m.length, cl)
            ex = target.ex
            if m is q:
                ex.body, ex.body_len, ex.truncated, ex.req_end_ns = body, length, True, m.last
                m.req_done = True
            else:
                ex.resp_body, ex.resp_body_len, ex.resp_truncated = body, length, True
                ex.resp_end_ns, target.resp_done = m.last, True
        if head and reason:
            self._m.incomplete.labels(reason).inc()

    def _ready(self) -> list[Exchange]:
        out, queue = [], self._queue
        while queue and queue[0].req_done and queue[0].resp_done:
            out.append(queue.popleft().ex)
            self._paired -= 1
        return out

    def _break(self, reason: str, exc: Exception | None = None) -> None:
        self.broken, self._dead = reason, True
        self._m.parse_errors.labels(reason).inc()
        log = self._log.info if reason == "upgraded" else self._log.warning
        detail = repr(exc.__context__ or exc) if exc else None  # a callback's own error, if any
        log("http_stream_broken", reason=reason, detail=detail,
            pending=len(self._queue))
        self._abandon("lost_bytes" if reason == "lost_bytes" else None)


def _head_size(m: _Msg) -> int:
    """Bytes of a parsed header block, give or take its spaces."""
    return sum(map(len, m.url)) + sum(len(n) + len(v) + 4 for n, v in m.raw)


def _framing(headers: Headers) -> tuple[int | None, bool]:
    """(Content-Length or None, has Transfer-Encoding) of a header list llhttp accepted."""
    cl, te = None, False
    for name, value in headers:
        name = name.lower()
        if name == "content-length":
            cl = int(value.strip())
        elif name == "transfer-encoding":
            te = True
    return cl, te


def _next_status_line(data: bytes, pos: int) -> int:
    """Offset after ``pos`` where a status line may start (or begin, cut by the feed's end)."""
    i = data.find(_HTTP, pos + 1)
    if i >= 0:
        return i
    n = len(data)
    for k in (4, 3, 2, 1):
        if n - k > pos and data.endswith(_HTTP[:k]):
            return n - k
    return n
