"""One keep-alive HTTP/1.x connection for one captured connection: pre-built bytes out, answer in.

``Connection(target, timeout).prepare(step)`` turns a step into a ``Prepared`` request: the
exact bytes to send, built once (geventhttpclient's own request builder makes them, so the
request line, the Host header added when absent, ``Content-Length`` and header validation are
what the client used to send), or why it cannot be sent; ``send(prepared)`` writes them on the
connection's one socket and reads the answer with httptools (llhttp). It replaces
geventhttpclient's per-request machinery (header objects, a connection pool, a Python callback
per response header), which cost more than the syscalls.

Behaviour kept from the client it replaces: keep-alive unless the answer says otherwise; bodies
framed by Content-Length, chunked or connection close; HEAD, 1xx, 204 and 304 answers without a
body; an idle socket the server closed (or wrote to) is replaced before the next request;
per-operation timeouts. Not kept, on purpose: a request whose socket closes before any answer is
an error, never sent a second time. The whole request goes out in one write (with
``Expect: 100-continue`` too: the same bytes, without waiting for the interim answer).

geventhttpclient has no public request builder: ``prepare`` calls ``HTTPClient._build_request``,
``_uses_chunked_transfer`` and ``_iter_chunked``, which is why pyproject.toml pins the exact
geventhttpclient version (see the comment there); tests/integration/test_replay_http1.py shows
what they must keep doing.
"""

from __future__ import annotations

import errno
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

import gevent.socket
import gevent.ssl
from gevent import monkey
from geventhttpclient import HTTPClient
from geventhttpclient.client import _iter_chunked, _uses_chunked_transfer
from geventhttpclient.header import Headers
from httptools import HttpParserError, HttpResponseParser

__all__ = ["Connection", "ConnectionClosed", "Prepared"]

_select = monkey.get_original("select", "select")  # a zero-timeout poll, not a gevent wait
BLOCK = 65536


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the whole answer arrived."""


class _Builder(HTTPClient):
    DEFAULT_HEADERS = Headers()  # add nothing but Host (when absent) and framing


class Prepared(NamedTuple):
    """A request ready to go out: its bytes, or (``data`` None) why it cannot be sent."""

    data: bytes | None  # the whole request, head and framed body
    head: bool = False  # a HEAD request: its answer has no body, whatever it announces
    error: str | None = None  # why it is not sent (as the old client raised it)


class Connection:
    def __init__(self, target: str, timeout: float, connect_timeout: float | None = None) -> None:
        u = urlsplit(target)
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.tls = u.scheme == "https"
        self.timeout = timeout
        self.connect_timeout = min(timeout, 10.0) if connect_timeout is None else connect_timeout
        self.sock = None
        self._builders = {}
        self.raw_head: list[bytes] = []  # correlation hook: the last answer's bytes up to the
        # end of its head (replayer.engine.correlation reads its headers)

    # -- building, once per step ---------------------------------------------------------------
    def prepare(self, s) -> Prepared:
        """The bytes ``s`` goes out as, or why it cannot be sent (as the old client raised it)."""
        b = self._builders.get(s.version)
        if b is None:
            b = self._builders[s.version] = _Builder(self.host, self.port, concurrency=1)
            b.version = _Builder.HTTP_10 if s.version == "1.0" else _Builder.HTTP_11
        try:
            headers = Headers(s.headers)
            chunked = _uses_chunked_transfer(headers, s.body)
            if chunked and b.version != _Builder.HTTP_11:
                raise ValueError("Chunked transfer encoding requires HTTP/1.1")
            head = b._build_request(s.method.upper(), s.target, body=s.body, headers=headers,
                                    chunked=chunked).encode("latin-1")
            body = (b"".join(_iter_chunked(s.body, b.block_size)) if s.body else b"0\r\n\r\n"
                    ) if chunked else s.body
        except Exception as exc:  # noqa: BLE001 - reported per request, like a transport error
            return Prepared(data=None, error=_describe(exc))
        return Prepared(data=head + body, head=s.method.upper() == "HEAD")

    # -- the socket ----------------------------------------------------------------------------
    def connect(self) -> None:
        sock = gevent.socket.create_connection((self.host, self.port), self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = gevent.ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, gevent.ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=self.host)
        sock.settimeout(self.timeout)
        self.sock = sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def send(self, req: Prepared) -> tuple[int, bytes]:
        """Send a prepared request (not an unsendable one), return (status, body); raises on
        any transport failure."""
        data, head = req.data, req.head
        sock = self.sock
        if sock is not None and _select([sock], [], [], 0.0)[0]:  # closed (or dirty) while idle
            self.close()
            sock = None
        if sock is None:
            self.connect()
            sock = self.sock
        try:
            _sendall(sock, data, self.tls)
        except OSError as exc:  # the server may have answered early (e.g. 413) and closed
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                self.close()
                raise
            try:
                return self._answer(sock, head)
            except Exception:
                raise exc from None
        return self._answer(sock, head)

    def _answer(self, sock, head: bool) -> tuple[int, bytes]:
        r = _Reader(head)
        p = r.parser = HttpResponseParser(r)
        self.raw_head = r.raw  # correlation hook
        try:
            while not r.done:
                data = sock.recv(BLOCK)
                if not data:
                    r.eof()
                    break
                if not r.headers_done:
                    r.raw.append(data)
                p.feed_data(data)
        except HttpParserError:
            if not r.done:
                self.close()
                raise
            r.trailing = True  # garbage after a complete answer: drop it with the socket
        except BaseException:
            self.close()
            raise
        if r.trailing or not r.keep_alive:
            self.close()
        return r.status, b"".join(r.body)


class _Reader:
    """httptools callbacks for one answer (llhttp calls back only what is defined here)."""

    __slots__ = ("head", "parser", "raw", "body", "status", "headers_done", "done",
                 "keep_alive", "trailing")

    def __init__(self, head: bool) -> None:
        self.head = head
        self.raw: list[bytes] = []  # received bytes until the headers end (for the rare cases)
        self.body: list[bytes] = []
        self.status = 0
        self.headers_done = self.done = self.trailing = False
        self.keep_alive = True

    def on_message_begin(self) -> None:
        if self.done:
            self.trailing = True  # more bytes after the answer: the connection is not clean

    def on_headers_complete(self) -> None:
        p = self.parser
        self.status = p.get_status_code()
        if self.status < 200 and self.status != 101:
            return  # interim answer; the final one follows
        self.headers_done = True
        self.keep_alive = p.should_keep_alive()
        if self.head:  # the answer ends with its headers, whatever they announce
            self.done = True
            if not self.keep_alive:  # llhttp judges as if a body followed: judge by headers
                self.keep_alive = _keeps_alive(*_final_headers(b"".join(self.raw)))

    def on_body(self, data: bytes) -> None:
        if self.done:
            self.trailing = True
        else:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if self.status < 200 and self.status != 101:
            self.body.clear()
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()

    def eof(self) -> None:
        """The server closed: the end of a close-delimited body, else a cut answer."""
        if self.headers_done:
            version, headers = _final_headers(b"".join(self.raw))
            if "content-length" not in headers and "transfer-encoding" not in headers:
                self.done, self.keep_alive = True, False
                return
            raise ConnectionClosed("connection closed before the end of the body")
        if self.raw or self.status:
            raise ConnectionClosed("connection closed before the end of the headers")
        raise ConnectionClosed("connection closed before any answer")


class _Headers:
    __slots__ = ("version", "headers")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def on_message_begin(self) -> None:
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1").lower()


def _final_headers(raw: bytes) -> tuple[str, dict[str, str]]:
    """(HTTP version, lower-case headers) of the last answer head in ``raw``; rare paths only."""
    h = _Headers()
    p = HttpResponseParser(h)
    try:
        p.feed_data(raw)
    except HttpParserError:
        pass
    return p.get_http_version(), h.headers


def _keeps_alive(version: str, headers: dict[str, str]) -> bool:
    conn = headers.get("connection", "")
    return "keep-alive" in conn if version == "1.0" else "close" not in conn


def _sendall(sock, data: bytes, tls: bool) -> None:
    """``sock.sendall(data)``; on plain TCP one ``send`` first (a request usually fits in one),
    which spares gevent's ``sendall`` its per-call ``SO_SNDBUF`` query and timer bookkeeping."""
    if not tls:
        sent = sock.send(data)  # gevent's: the OS socket's send, waiting only if it is full
        if sent == len(data):
            return
        data = memoryview(data)[sent:]
    sock.sendall(data)


def _describe(exc: BaseException) -> str:
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
