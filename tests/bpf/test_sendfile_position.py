"""sendfile(2) with no offset (the file position is used and moved, as Go's file server does):
a body sent in several such calls is read back from where each call started, even when the
sidecar reads it after later calls moved the position; never from where the position is now."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time

from tests.bpf.conftest import new_stream
from tests.support.rawhttp import read_head
from tests.support.capture import CaptureProcess, StreamReader, connect

PART = 16384
CONTENT = b"".join(bytes([0x41 + i]) * PART for i in range(4))  # AAAA..BBBB..CCCC..DDDD..


def _serve(sock: socket.socket, path: str) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            buf = read_head(conn)
            if not buf:
                continue
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(CONTENT)}\r\n\r\n".encode())
            fd = os.open(path, os.O_RDONLY)
            try:
                for _ in range(4):  # back to back: the position moves before the sidecar looks
                    assert os.sendfile(conn.fileno(), fd, None, PART) == PART
                time.sleep(1.0)  # the file stays open while the sidecar reads it back
            finally:
                os.close(fd)


def test_bodies_sent_from_the_file_position_are_read_from_where_each_call_began(redis_srv):
    """Four back-to-back sendfile(out, in, NULL, 16 KiB) calls of one response: the record's
    body is the file's 64 KiB in order, or flagged truncated, never the last part repeated."""
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(CONTENT)
        path = f.name
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    threading.Thread(target=_serve, args=(sock, path), daemon=True).start()
    stream = new_stream("sendfile-pos")
    try:
        with CaptureProcess(port, redis_srv.url, stream) as cap:
            connect(port).close()  # the accept() already blocked when the probe came
            time.sleep(0.2)
            s = connect(port)
            s.sendall(b"GET /parts HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while not got.endswith(CONTENT):
                got += s.recv(1 << 16)
            s.close()
            (rec,) = StreamReader(redis_srv.client(), stream).wait(
                lambda r: r.target == "/parts", 1, timeout=20)
        assert cap.proc.returncode == 0, cap.log_text()
    finally:
        sock.close()
        os.unlink(path)
    assert rec.status == 200 and rec.resp_body_len == len(CONTENT)
    if rec.resp_truncated:
        assert CONTENT.startswith(rec.resp_body)
    else:
        assert rec.resp_body == CONTENT
