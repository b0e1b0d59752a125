"""Vectored I/O (readv/recvmsg, writev/sendmsg) with iovec entries of every size comes out
byte-exact, whether the probe gathers small entries into one chunk or splits large ones."""

from __future__ import annotations

import os
import random
import socket
import threading
import time

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader, connect

SIZES = [1, 2, 147, 3, 8191, 8192, 8193, 5, 16384, 16385, 7, 40000, 1, 0, 120, 9000]


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for n in sizes:
        out.append(data[pos:pos + n])
        pos += n
    out.append(data[pos:])
    return out


class VectoredServer:
    """Answers each request on a connection with a response written by sendmsg() or
    os.writev() in many iovec entries; reads requests with recvmsg_into() into several
    buffers. Runs in a thread of the test process (the sidecar is another process)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            n = 0
            while True:
                bufs = [bytearray(7), bytearray(13), bytearray(3), bytearray(65536)]
                got = conn.recvmsg_into(bufs)[0]
                if not got:
                    return
                buf += b"".join(bufs)[:got]
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
                            f"X-N: {n}\r\n\r\n").encode()
                    parts = _pieces(head, [1, 4, 2]) + _pieces(self.body, SIZES)
                    sent = conn.sendmsg(parts) if n % 2 else os.writev(conn.fileno(), parts)
                    assert sent == sum(map(len, parts))
                    n += 1

    def close(self) -> None:
        self.sock.close()


def test_vectored_io_with_small_and_large_entries_is_exact(redis_srv):
    """Responses written by writev()/sendmsg() in entries of 0 B to 40 KB, and requests read by
    recvmsg() into several buffers, are recorded byte for byte."""
    body = random.Random(7).randbytes(sum(SIZES) + 11)
    srv = VectoredServer(body)
    stream = new_stream("gather")
    try:
        with CaptureProcess(srv.port, redis_srv.url, stream) as cap:
            reader = StreamReader(redis_srv.client(), stream)
            # the server thread was already blocked in accept() when the probe attached, so the
            # connection that call returns is not seen: spend it on a throw-away connection
            connect(srv.port).close()
            time.sleep(0.2)
            s = connect(srv.port)
            for i in range(4):
                s.sendall(f"GET /gather/{i} HTTP/1.1\r\nHost: x\r\nX-Pad: {'p' * 40}\r\n\r\n".encode())
                want = len(body)
                got = b""
                while not got.endswith(body[-32:]) or len(got) < want:
                    got += s.recv(1 << 16)
            s.close()
            recs = reader.wait(lambda r: r.target.startswith("/gather/"), 4, timeout=30)
    finally:
        srv.close()
    assert cap.proc.returncode == 0, cap.log_text()
    assert sorted(r.target for r in recs) == [f"/gather/{i}" for i in range(4)]
    for r in recs:
        assert r.status == 200
        assert r.resp_body == body and r.resp_body_len == len(body) and not r.resp_truncated
        assert ("X-Pad", "p" * 40) in r.headers
