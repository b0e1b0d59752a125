"""A captured connection's fd reused without close() (dup2, close_range) never lends the old
connection's state to whatever the fd names next; a vectored write with more iovec entries than
the probe follows is a counted drop."""

from __future__ import annotations

import os
import socket
import threading
import time

from tests.bpf.conftest import new_stream
from tests.support.rawhttp import read_head
from tests.support.capture import CaptureProcess, StreamReader, connect

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# what the server writes to the reused fd afterwards: a well-formed response, so that if the
# probe took it for the old connection's bytes it would show as an unpaired response
STRAY = b"HTTP/1.1 500 Stray\r\nContent-Length: 5\r\n\r\nstray"


class ReusingServer:
    """Answers one request per connection, then makes the connection's fd name another file
    without calling close() (``reuse(fd)``) and writes STRAY to it. Runs in a thread of the
    test process (a target: it owns the listening socket)."""

    def __init__(self, reuse) -> None:
        self.reuse = reuse
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                buf = read_head(conn)
                if not buf:
                    conn.close()
                    continue
                conn.sendall(RESPONSE)
                if buf.startswith(b"GET /reuse"):
                    time.sleep(0.3)  # let the sidecar see the exchange first (not required)
                    fd = conn.detach()  # the socket object lets go; fd stays open
                    other = self.reuse(fd)  # fd now names another file
                    os.write(fd, STRAY)
                    os.close(fd)
                    for x in other:
                        os.close(x)
                    self.done.set()
                else:
                    conn.close()
            except BaseException as exc:  # noqa: BLE001 -- reported by the test
                self.errors.append(exc)
                self.done.set()

    def close(self) -> None:
        self.sock.close()


def _dup2_pipe(fd: int) -> list[int]:
    r, w = os.pipe()
    os.dup2(w, fd)  # closes the connection's socket implicitly
    return [r, w]


def _close_range_devnull(fd: int) -> list[int]:
    os.closerange(fd, fd + 1)  # close_range(2) on Linux: no close() call is made
    opened = []
    while True:  # the lowest free fd is handed out next: open until fd is ours again
        x = os.open(os.devnull, os.O_WRONLY)
        if x == fd:
            break
        opened.append(x)
        assert len(opened) < 64, "could not get the fd back"
    return opened


def _run(redis_srv, reuse, name: str):
    srv = ReusingServer(reuse)
    stream = new_stream(name)
    try:
        with CaptureProcess(srv.port, redis_srv.url, stream) as cap:
            reader = StreamReader(redis_srv.client(), stream)
            connect(srv.port).close()  # the accept() already blocked when the probe came
            time.sleep(0.2)
            s = connect(srv.port)
            s.sendall(b"GET /reuse HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while not got.endswith(b"ok"):
                got += s.recv(4096)
            assert srv.done.wait(10) and not srv.errors, srv.errors
            s.close()
            recs = reader.settle(lambda r: r.target == "/reuse", quiet=1.5, timeout=20)
            time.sleep(1.2)  # one housekeeping round: the counters reach /metrics
            metrics = cap.metrics()
    finally:
        srv.close()
    errors = {dict(k).get("reason"): v for (n, k), v in metrics.items()
              if n == "rewind_capture_parse_errors_total" and v}
    return recs, errors, metrics


def test_dup2_over_a_captured_fd_ends_the_connection(redis_srv):
    """dup2(pipe, fd) over a captured connection ends it in the probe: what the server then
    writes to the pipe through that fd number is not taken for the connection's response."""
    recs, errors, _ = _run(redis_srv, _dup2_pipe, "dup2")
    assert [(r.status, r.resp_body) for r in recs] == [(200, b"ok")]
    assert errors == {}


def test_close_range_then_reuse_does_not_inherit_the_connection(redis_srv):
    """close_range() closes a captured connection without close(); a file opened on the same fd
    number afterwards is not captured as the old connection (its generation moved on)."""
    recs, errors, _ = _run(redis_srv, _close_range_devnull, "closerange")
    assert [(r.status, r.resp_body) for r in recs] == [(200, b"ok")]
    assert errors == {}


def test_more_iovec_entries_than_followed_is_a_counted_drop(redis_srv):
    """A writev() of 100 entries (the probe follows MAX_IOV = 64) counts an iov_limit drop, and
    the bytes past the 64th entry are counted as lost, not silently cut."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    pieces = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"] + [b"x"] * 99 + [b"y"]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                buf = read_head(conn)
                if buf:
                    os.writev(conn.fileno(), pieces)

    threading.Thread(target=serve, daemon=True).start()
    stream = new_stream("iov")
    try:
        with CaptureProcess(port, redis_srv.url, stream) as cap:
            connect(port).close()
            time.sleep(0.2)
            s = connect(port)
            s.sendall(b"GET /iov HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while len(got) < 138:
                got += s.recv(4096)
            s.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                drops = cap.metric("rewind_capture_dropped_events_total", reason="iov_limit")
                if drops:
                    break
                time.sleep(0.2)
            lost = cap.metric("rewind_capture_lost_bytes_total")
    finally:
        srv.close()
    assert drops >= 1
    assert lost >= 36  # entries 65..101 of the writev: 36 bytes
