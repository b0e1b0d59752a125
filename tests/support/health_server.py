"""A loopback HTTP/1.1 server for target-health tests: steady, or leaking memory per request.

    python tests/support/health_server.py --port 8080 [--leak-bytes 200000]

Every request is answered 200 ``{"ok": true}`` on a keep-alive connection; with ``--leak-bytes
N`` the server also keeps N bytes per request for good (a list that only grows: the leak a soak
is meant to find). ``/metrics`` serves prometheus_client's default registry, whose process
collector exports ``process_resident_memory_bytes`` (what Prometheus watches in the tests).
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest

KEPT: list[bytes] = []


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--leak-bytes", type=int, default=0)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            if self.path == "/metrics":
                body, ctype = generate_latest(), "text/plain; version=0.0.4"
            else:
                if args.leak_bytes:
                    KEPT.append(b"x" * args.leak_bytes)  # written, so resident
                body, ctype = b'{"ok": true}', "application/json"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
