"""An HTTP/1.1 keep-alive echo server on Python's http.server, for capture tests.

Every request, whatever its method and path, is answered 200 with JSON describing what the
server received: {method, path, query, body_len, body_sha256, headers: [[name, value], ...]}.
The request body is read by Content-Length or by chunked transfer encoding; `Expect:
100-continue` is answered by the standard library before the body is read.

    python echo_http_server.py --port 8080 [--host 127.0.0.1] [--tls-cert C --tls-key K]

With --tls-cert/--tls-key it speaks HTTPS (Python's ssl module on the system's libssl); the
handshake happens in the connection's thread, on its first read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class BadRequest(Exception):
    """The request's framing cannot be read (bad Content-Length or chunk size)."""


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen backlog: load tests open hundreds of connections at once


class TlsEchoServer(EchoServer):
    context: ssl.SSLContext

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall

    def __getattr__(self, name: str):
        # Any method name is accepted: every do_<METHOD> lookup finds _echo.
        if name.startswith("do_"):
            return self._echo
        raise AttributeError(name)

    def _echo(self) -> None:
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self.send_error(400, str(exc))
            return
        url = urlsplit(self.path)
        answer = json.dumps({
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "headers": [[k, v] for k, v in self.headers.items()],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise BadRequest(f"bad Content-Length {length!r}")
        return self._read_exactly(int(length))

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            line = self.rfile.readline(65537)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                break
            parts.append(self._read_exactly(size))
            if self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                raise BadRequest("chunk not followed by CRLF")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored
        return b"".join(parts)

    def _read_exactly(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:
            raise BadRequest(f"body ended after {len(data)} of {n} bytes")
        return data

    def log_message(self, format, *args):
        pass  # quiet: load tests send millions of requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()
    if args.tls_cert:
        server = TlsEchoServer((args.host, args.port), EchoHandler)
        server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.context.load_cert_chain(args.tls_cert, args.tls_key)
    else:
        server = EchoServer((args.host, args.port), EchoHandler)
    print(f"listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
