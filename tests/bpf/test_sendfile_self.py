"""Responses sent with sendfile(2), and the sidecar never capturing itself."""

from __future__ import annotations

import os

import pytest
import requests

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.servers import nginx


def _fetch_blob(redis_srv, open_file_cache: bool):
    with nginx("static", access_log=False, open_file_cache=open_file_cache) as srv:
        content = os.urandom(300_000)
        (srv.workdir / "www" / "blob.bin").write_bytes(content)
        stream = new_stream("sendfile")
        with CaptureProcess(srv.port, redis_srv.url, stream) as cap:
            got = requests.get(f"{srv.url}/blob.bin", timeout=10).content
            (rec,) = StreamReader(redis_srv.client(), stream).wait(
                lambda r: r.target == "/blob.bin", 1)
            metrics = cap.metrics()
    assert got == content
    return content, rec, metrics


def test_sendfile_response_read_back_from_the_open_file(redis_srv):
    """nginx with open_file_cache keeps the file open: a response sent with sendfile(2) is
    recorded byte-exact, read back from the file the server sent."""
    content, rec, metrics = _fetch_blob(redis_srv, open_file_cache=True)
    assert rec.status == 200 and rec.resp_body_len == len(content)
    assert rec.resp_body == content and not rec.resp_truncated
    assert metrics.get(("rewind_capture_lost_bytes_total", ()), 0) == 0


@pytest.mark.parametrize("attempt", range(2))
def test_sendfile_from_a_closed_file_is_never_silently_wrong(redis_srv, attempt):
    """Without a file cache nginx may close the file before the sidecar reads it back: the body
    is then either exact, or flagged truncated and counted as lost bytes, never wrong."""
    content, rec, metrics = _fetch_blob(redis_srv, open_file_cache=False)
    assert rec.status == 200 and rec.resp_body_len == len(content)
    if rec.resp_body != content:
        assert rec.resp_truncated and content.startswith(rec.resp_body)
        assert metrics[("rewind_capture_lost_bytes_total", ())] == len(content)
        assert metrics[("rewind_capture_incomplete_messages_total",
                        (("reason", "sendfile_unreadable"),))] == 1


def test_sidecar_does_not_capture_its_own_metrics_port(redis_srv):
    """Pointed at its own metrics port, the sidecar finds no target (it skips itself), and
    scraping it produces no records."""
    stream = new_stream("self")
    cap = CaptureProcess(0, redis_srv.url, stream)
    port = cap.metrics_port
    cap.argv[cap.argv.index("--port") + 1] = str(port)
    with cap:
        for _ in range(5):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert cap.metric("rewind_capture_listeners") == 0
        assert cap.metric("rewind_capture_requests_total") == 0
        assert cap.events("capture.no_listener")
    assert StreamReader(redis_srv.client(), stream).poll() == 0
