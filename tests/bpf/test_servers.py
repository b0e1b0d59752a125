"""Real servers (gunicorn sync/gthread, nginx, Node.js, Python) hit by real clients (curl, wrk,
Python requests), each captured by the real probe."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import requests

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.servers import gunicorn_flask, nginx, node_http_server, python_http_server


def _capture(server, redis_srv):
    stream = new_stream(server.name if hasattr(server, "name") else "srv")
    cap = CaptureProcess(server.port, redis_srv.url, stream).start()
    cap.reader = StreamReader(redis_srv.client(), stream)
    return cap


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_gunicorn_flask_with_python_requests(redis_srv, worker_class):
    """The demo API under gunicorn (every worker) is captured: JSON POSTs and GETs from a
    requests.Session, with the bodies and statuses the client saw."""
    with gunicorn_flask(worker_class, workers=2, threads=4) as api:
        cap = _capture(api, redis_srv)
        try:
            session = requests.Session()
            sent = []
            for i in range(20):
                body = {"user": f"u{i % 3}", "article": f"a{i % 5}", "reaction": "love"}
                r = session.post(f"{api.url}/reactions", json=body, timeout=10)
                sent.append((json.dumps(body).encode(), r.status_code, r.content))
            g = session.get(f"{api.url}/users/u1/reactions", timeout=10)
            posts = cap.reader.wait(lambda r: r.target == "/reactions", 20)
            (get,) = cap.reader.wait(lambda r: r.target == "/users/u1/reactions", 1)
        finally:
            assert cap.stop() == 0, cap.log_text()
        assert [(r.body, r.status, r.resp_body) for r in posts] == sent
        assert get.resp_body == g.content and get.status == 200
        assert {int(r.conn.split(":")[1]) for r in posts + [get]} <= set(api.pids())


def test_nginx_all_workers_with_wrk(redis_srv):
    """wrk against nginx (master + 2 workers): every request wrk completed is captured, and at
    most the requests in flight when wrk stopped come on top."""
    with nginx("return200") as srv:
        cap = _capture(srv, redis_srv)
        try:
            out = subprocess.run(["wrk", "-t2", "-c20", "-d3s", f"{srv.url}/wrk?x=1"],
                                 capture_output=True, text=True, check=True).stdout
            done = int(re.search(r"(\d+) requests in", out).group(1))
            recs = cap.reader.settle(lambda r: r.target == "/wrk?x=1", quiet=1.5, timeout=60)
            dropped = cap.metric("rewind_capture_dropped_events_total", reason="ringbuf_full")
        finally:
            assert cap.stop() == 0, cap.log_text()
        answered = [r for r in recs if r.status == 200]
        assert done <= len(answered) <= len(recs) <= done + 20, (done, len(answered), len(recs), dropped)
        assert all(r.resp_body == b"ok\n" for r in answered)
        workers = {int(r.conn.split(":")[1]) for r in recs}
        assert workers <= set(srv.pids())


def test_node_http_with_curl(redis_srv):
    """Node.js (accept4 without a peer address, 64 KiB reads) captured with curl keep-alive;
    the client address is found anyway."""
    with node_http_server() as srv:
        cap = _capture(srv, redis_srv)
        try:
            body = b"n" * 200_000
            out = subprocess.run(
                ["curl", "-s", "--data-binary", "@-", "-H", "Content-Type: text/plain",
                 f"{srv.url}/node/one", "--next", f"{srv.url}/node/two"],
                input=body, capture_output=True, check=True).stdout
            recs = cap.reader.wait(lambda r: r.target.startswith("/node/"), 2)
        finally:
            assert cap.stop() == 0, cap.log_text()
        one, two = recs
        assert one.method == "POST" and one.body == body and one.body_len == len(body)
        assert two.method == "GET" and one.conn == two.conn and (one.seq, two.seq) == (0, 1)
        assert one.resp_body + two.resp_body == out
        assert one.client.startswith("127.0.0.1:")


def test_python_http_server_with_curl(redis_srv):
    """Python's http.server with curl: method, target, headers and body as curl sent them."""
    with python_http_server() as srv:
        cap = _capture(srv, redis_srv)
        try:
            out = subprocess.run(
                ["curl", "-s", "-X", "PATCH", "-H", "X-Rewind: yes", "--data-binary", "a=1&b=2",
                 f"{srv.url}/py/patch?z=9"], capture_output=True, check=True).stdout
            (rec,) = cap.reader.wait(lambda r: r.target == "/py/patch?z=9", 1)
        finally:
            assert cap.stop() == 0, cap.log_text()
        assert rec.method == "PATCH" and rec.body == b"a=1&b=2"
        assert ("X-Rewind", "yes") in rec.headers
        assert rec.resp_body == out and rec.status == 200
