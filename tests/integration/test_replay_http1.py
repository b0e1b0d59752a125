"""The replay's HTTP/1.x connection (replayer/engine/http1.py) against a scripted server on loopback:
every framing of an answer, keep-alive, and failures counted without a second send."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from replayer.engine.http1 import Connection, ConnectionClosed
from replayer.engine.plan import Step

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Scripted:
    """Answers each request with ``answers[path]`` = (bytes, close after); logs (conn, request)."""

    def __init__(self, answers: dict[str, tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.seen: list[tuple[int, bytes]] = []
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.lsock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            n += 1
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c: socket.socket, n: int) -> None:
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buf) < length:
                    buf += c.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.seen.append((n, head + b"\r\n\r\n" + body))
                answer, close = self.answers[head.split(b" ")[1].decode()]
                c.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self.lsock.close()


@pytest.fixture
def server(request):
    srv = Scripted(request.param)
    yield srv
    srv.close()


def step(target: str, method: str = "GET", headers=(("Host", "h"),), body: bytes = b"",
         version: str = "1.1") -> Step:
    return Step(idx=0, conn="c", due=0.0, method=method, target=target, headers=list(headers),
                body=body, endpoint="", rec_status=200, rec_body=b"", rec_body_ok=True,
                version=version)


def send(conn: Connection, *args, **kw) -> tuple[int, bytes]:
    return conn.send(conn.prepare(step(*args, **kw)))


ANSWERS = {
    "/ok": (OK, False),
    "/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
                 b"0\r\n\r\n", False),
    "/eof": (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", True),
    "/head": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", False),
    "/nocontent": (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    "/notmodified": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", False),
    "/continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, False),
    "/cut": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True),
    "/drop": (b"", True),
    "/closes": (OK, True),
    "/garbage": (OK + b"XYZ\r\n", False),
}


@pytest.mark.parametrize("server", [ANSWERS], indirect=True)
def test_framings_and_keep_alive(server):
    """Content-Length, chunked, close-delimited, HEAD, 204, 304 and 1xx answers are read whole;
    the connection is kept unless the answer ends with a close."""
    conn = Connection(server.url, timeout=5)
    assert send(conn, "/ok") == (200, b"ok")
    assert send(conn, "/chunked") == (200, b"abcde")
    assert send(conn, "/head", "HEAD") == (200, b"")
    assert send(conn, "/nocontent") == (204, b"")
    assert send(conn, "/notmodified") == (304, b"")
    assert send(conn, "/continue", "POST", body=b"x") == (200, b"ok")
    assert send(conn, "/eof") == (200, b"until close")
    assert send(conn, "/ok") == (200, b"ok")
    assert [n for n, _ in server.seen] == [1] * 7 + [2]
    conn.close()


@pytest.mark.parametrize("server", [ANSWERS], indirect=True)
def test_failures_are_raised_and_never_resent(server):
    """A cut body or a close before any answer raises; the server saw the request once."""
    conn = Connection(server.url, timeout=5)
    with pytest.raises(ConnectionClosed, match="end of the body"):
        send(conn, "/cut")
    with pytest.raises(ConnectionClosed, match="before any answer"):
        send(conn, "/drop")
    assert [req.split(b" ")[1] for _, req in server.seen] == [b"/cut", b"/drop"]
    assert send(conn, "/ok") == (200, b"ok")  # a new connection for the next request


@pytest.mark.parametrize("server", [ANSWERS], indirect=True)
def test_server_closes_idle_or_sends_garbage(server):
    """A socket the server closed while idle, or that got bytes after an answer, is replaced
    before the next request (which is sent once, on the new connection)."""
    conn = Connection(server.url, timeout=5)
    assert send(conn, "/closes") == (200, b"ok")  # no Connection: close, but it closes
    time.sleep(0.1)
    assert send(conn, "/garbage") == (200, b"ok")
    assert send(conn, "/ok") == (200, b"ok")
    assert [n for n, _ in server.seen] == [1, 2, 3]


def test_timeout():
    """No answer within the timeout raises TimeoutError."""
    lsock = socket.create_server(("127.0.0.1", 0))
    conn = Connection(f"http://127.0.0.1:{lsock.getsockname()[1]}", timeout=0.3)
    t = time.monotonic()
    with pytest.raises(TimeoutError):
        send(conn, "/")
    assert time.monotonic() - t < 3
    lsock.close()


@pytest.mark.parametrize("server", [ANSWERS], indirect=True)
def test_request_bytes(server):
    """The bytes are the recorded request's: Host added only when absent in HTTP/1.1,
    Content-Length from the body (0 for an empty POST), the recorded version."""
    conn = Connection(server.url, timeout=5)
    host = server.url.split("//")[1]
    send(conn, "/ok", "POST", headers=[("A", "1"), ("a", "2")], body=b"xyz")
    send(conn, "/ok", "post", headers=[("Host", "keep")])
    send(conn, "/ok", "GET", headers=[], version="1.0")
    assert [req for _, req in server.seen] == [
        f"POST /ok HTTP/1.1\r\nA: 1\r\na: 2\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nxyz"
        .encode(),
        b"POST /ok HTTP/1.1\r\nHost: keep\r\nContent-Length: 0\r\n\r\n",
        b"GET /ok HTTP/1.0\r\n\r\n"]
    assert conn.prepare(step("/ok", headers=[("Bad Name", "x")])).data is None


@pytest.mark.parametrize("server", [ANSWERS], indirect=True)
def test_large_body_sent_whole(server):
    """A body larger than the socket buffer goes out whole (the first send takes only part)."""
    conn = Connection(server.url, timeout=10)
    body = bytes(range(256)) * 40_000  # 10 MB
    assert send(conn, "/ok", "POST", body=body) == (200, b"ok")
    assert server.seen[0][1].endswith(b"\r\n\r\n" + body)


def test_https_keep_alive():
    """An https:// target: TLS without certificate checks, answers read through it, one
    connection for several requests (the echo server answers JSON with the request's path)."""
    import json

    from tests.support.servers import python_http_server

    with python_http_server(tls=True) as srv:
        conn = Connection(srv.url, timeout=10)
        socks = []
        for path in ("/a", "/b?x=1", "/c"):
            status, body = send(conn, path, headers=[("Host", "h")])
            assert status == 200 and json.loads(body)["path"] == path.split("?")[0]
            socks.append(conn.sock)
        assert socks[0] is not None and socks == [socks[0]] * 3  # one TLS connection throughout
        conn.close()
