"""A raw-socket HTTP/1.1 client for tests that must know the exact bytes sent."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class _Collector:
    def __init__(self) -> None:
        self.done: list[Response] = []
        self.cur = Response()
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.cur = Response()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.cur.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.cur.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.cur.body += body

    def on_message_complete(self) -> None:
        self.done.append(self.cur)


def request(method: str, target: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
            host: str = "127.0.0.1") -> bytes:
    """Wire bytes of a request with Content-Length (when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or [])]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_responses(sock: socket.socket, n: int, include_interim: bool = False) -> list[Response]:
    """Read until ``n`` final responses (1xx are skipped unless asked for) have arrived."""
    c = _Collector()
    while True:
        final = [r for r in c.done if include_interim or r.status >= 200]
        if len(final) >= n:
            return final
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError(f"server closed after {len(final)} of {n} responses")
        c.parser.feed_data(data)


def read_head(conn: socket.socket) -> bytes:
    """Bytes received until a request head's blank line (or the peer's close): b"" on a
    connection closed without a byte."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf
