"""Bad traffic never stops the sidecar: each kind is counted, and idle state expires so memory
stays bounded."""

from __future__ import annotations

import resource
import socket
import time

import pytest

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request
from tests.support.servers import nginx


@pytest.fixture(scope="module")
def nginx_capture(redis_srv):
    with nginx("return200") as srv:
        stream = new_stream("bad")
        cap = CaptureProcess(srv.port, redis_srv.url, stream, "--idle-timeout", "3s").start()
        cap.reader = StreamReader(redis_srv.client(), stream)
        cap.server = srv
        try:
            yield cap
        finally:
            assert cap.stop() == 0, cap.log_text()


def _errors(cap) -> float:
    return sum(v for (name, _), v in cap.metrics().items()
               if name == "rewind_capture_parse_errors_total")


def _send_and_drain(port: int, data: bytes) -> None:
    s = connect(port)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # the server answers, sees the end and closes: no keep-alive wait
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()


def _wait_metric(cap, fn, want, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn(cap) >= want:
            return
        time.sleep(0.1)
    raise AssertionError(f"metric stayed below {want}:\n{cap.log_text()}")


@pytest.mark.parametrize("label, data", [
    ("garbage", b"\x00\x01\x02garbage\xff\xfe\r\n\r\n"),
    ("unknown method", b"FROB /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("100 KiB header line", b"GET /big-header HTTP/1.1\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n"),
])
def test_malformed_requests_are_counted_and_capture_goes_on(nginx_capture, label, data):
    """Each malformed request is one parse error in the metrics; the sidecar keeps capturing."""
    cap = nginx_capture
    before = _errors(cap)
    _send_and_drain(cap.server.port, data)
    _wait_metric(cap, _errors, before + 1)
    assert cap.alive()
    s = connect(cap.server.port)
    s.sendall(request("GET", f"/after/{label.replace(' ', '-')}"))
    read_responses(s, 1)
    s.close()
    assert cap.reader.wait(lambda r: r.target.startswith("/after/" + label.replace(" ", "-")), 1)


def test_half_request_then_silence_expires(nginx_capture):
    """A client that sends half a request and goes silent: its state expires after the idle
    timeout and the abandoned request is counted."""
    cap = nginx_capture

    def expired(c):
        return c.metric("rewind_capture_connections_expired_total")

    before = expired(cap)
    s = connect(cap.server.port)
    s.sendall(b"POST /half HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    _wait_metric(cap, expired, before + 1, timeout=20)
    s.close()
    incomplete = sum(v for (n, _), v in cap.metrics().items()
                     if n == "rewind_capture_incomplete_messages_total")
    assert incomplete >= 1
    assert cap.alive()


def test_5000_idle_connections_memory_bounded(nginx_capture):
    """5,000 connections that send one byte and go idle: all tracked, then all expired; the
    sidecar's memory returns near where it started."""
    cap = nginx_capture
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 20000)), hard))
    expired_before = cap.metric("rewind_capture_connections_expired_total")
    rss_before = cap.rss_kib()
    socks = []
    try:
        for _ in range(5000):
            s = socket.create_connection(("127.0.0.1", cap.server.port), timeout=10)
            s.send(b"G")
            socks.append(s)
        _wait_metric(cap, lambda c: c.metric("rewind_capture_connections"), 5000, timeout=30)
        rss_peak = cap.rss_kib()
        _wait_metric(cap, lambda c: c.metric("rewind_capture_connections_expired_total"),
                     expired_before + 5000, timeout=30)
        assert cap.metric("rewind_capture_connections") < 50
        assert cap.alive()
    finally:
        for s in socks:
            s.close()
    rss_after = cap.rss_kib()
    # state for 5,000 connections is a few MiB; the bound is what must hold
    assert rss_peak - rss_before < 100 * 1024, (rss_before, rss_peak)
    assert rss_after - rss_before < 100 * 1024, (rss_before, rss_after)
