"""A server thread already asleep in accept() when capture starts does not lose its next
connection (the probe never saw that accept() enter; the capture hands it over from /proc)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import requests

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.servers import free_port

SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    while True:
        c, _ = s.accept()          # blocking accept, no select(): sleeps in accept4()
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            data += c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nhi\\n")
        c.close()
""")


def test_first_connection_to_a_thread_blocked_in_accept_is_captured(redis_srv):
    """A server sleeping in accept() since before capture started: the first request after the
    start is captured, with its response."""
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        time.sleep(1.0)  # bound and asleep in accept()
        stream = new_stream("accept")
        with CaptureProcess(port, redis_srv.url, stream):
            r = requests.get(f"http://127.0.0.1:{port}/first", headers={"X-First": "1"}, timeout=10)
            recs = StreamReader(redis_srv.client(), stream).wait(
                lambda rec: rec.target == "/first", 1, timeout=10)
    finally:
        srv.kill()
        srv.wait()
    assert r.content == b"hi\n"
    assert len(recs) == 1 and ("X-First", "1") in recs[0].headers
    assert recs[0].resp_body == b"hi\n" and recs[0].client.startswith("127.0.0.1:")
