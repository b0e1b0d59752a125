"""Smoke tests for the real servers capture tests run against (tests/support)."""

from __future__ import annotations

import hashlib
import socket
import sys

import psutil
import pytest
import requests

from tests.support.prometheus import prometheus
from tests.support.servers import (
    ServerStartError,
    gunicorn_flask,
    nginx,
    node_http_server,
    python_http_server,
    start_server,
)

BIG = bytes(range(256)) * 4096  # 1 MiB
CHUNKS = [b"first chunk;", b"", b"x" * 70000, b"last"]

ECHO_SERVERS = {
    "python": (python_http_server, "/any/path"),
    "node": (node_http_server, "/any/path"),
    "gunicorn-sync": (lambda: gunicorn_flask("sync", workers=2), "/echo/any/path"),
    "gunicorn-gthread": (lambda: gunicorn_flask("gthread", workers=2, threads=4),
                         "/echo/any/path"),
}


def assert_gone(pids: list[int], port: int) -> None:
    for pid in pids:
        if psutil.pid_exists(pid):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"pid {pid} still runs"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def post(session: requests.Session, url: str, **kwargs) -> tuple[requests.Response, int | None]:
    """POST and return the response with the client port of the connection that carried it."""
    r = session.post(url, stream=True, **kwargs)
    conn = r.raw.connection  # None when the server said it will close the connection
    client_port = conn.sock.getsockname()[1] if conn is not None and conn.sock else None
    _ = r.content  # read the whole answer, which hands the connection back to the pool
    return r, client_port


def header(echo: dict, name: str) -> str | None:
    return next((v for k, v in echo["headers"] if k.lower() == name.lower()), None)


@pytest.mark.parametrize("kind", ECHO_SERVERS)
def test_echo_server_sees_exactly_what_was_sent(kind):
    """A 1 MiB POST then a chunked POST on one session come back with the right length and hash."""
    start, path = ECHO_SERVERS[kind]
    with start() as srv:
        pids = srv.pids()
        assert pids and srv.popen.pid in pids
        with requests.Session() as session:
            r, port1 = post(session, f"{srv.url}{path}?a=1&b=two", data=BIG,
                            headers={"X-Rewind-Test": "big"})
            assert r.status_code == 200, r.text
            echo = r.json()
            assert (echo["method"], echo["path"], echo["query"]) == ("POST", path, "a=1&b=two")
            assert echo["body_len"] == len(BIG)
            assert echo["body_sha256"] == hashlib.sha256(BIG).hexdigest()
            assert header(echo, "X-Rewind-Test") == "big"

            r, port2 = post(session, srv.url + path, data=iter(CHUNKS))
            assert r.status_code == 200, r.text
            echo = r.json()
            assert header(echo, "Transfer-Encoding") == "chunked"
            assert echo["body_len"] == sum(map(len, CHUNKS))
            assert echo["body_sha256"] == hashlib.sha256(b"".join(CHUNKS)).hexdigest()

            if kind == "gunicorn-sync":  # the sync worker closes after every response
                assert r.headers["Connection"] == "close"
            else:
                assert port1 is not None and port1 == port2 and r.headers.get("Connection", "") != "close"
    assert_gone(pids, srv.port)


@pytest.mark.parametrize("mode", ["return200", "echo_len"])
def test_nginx_reads_bodies_and_answers(mode):
    """nginx (master + 2 workers) answers a 1 MiB and a chunked POST on one keep-alive connection."""
    with nginx(mode) as srv:
        pids = srv.pids()
        assert len(pids) == 3
        with requests.Session() as session:
            big, port1 = post(session, srv.url + "/upload", data=BIG)
            chunked, port2 = post(session, srv.url + "/upload", data=iter(CHUNKS))
            assert port1 is not None and port1 == port2
    assert (big.status_code, chunked.status_code) == (200, 200)
    if mode == "return200":
        assert big.text == chunked.text == "ok\n"
    else:
        assert (int(big.text), int(chunked.text)) == (len(BIG), sum(map(len, CHUNKS)))
    assert_gone(pids, srv.port)


def test_demo_api_endpoints_and_validation():
    """The demo API stores reactions, lists and summarises them, and answers bad input with 400."""
    with gunicorn_flask("gthread") as srv, requests.Session() as s:
        assert s.get(srv.url + "/healthz").json() == {"status": "ok"}
        for user, reaction in [("ann", "love"), ("ann", "cry"), ("bob", "love")]:
            r = s.post(srv.url + "/reactions",
                       json={"user": user, "article": "a-1", "reaction": reaction})
            assert r.status_code == 201, r.text
            stored = r.json()
            assert stored["reaction"] == reaction and stored["id"] and stored["created_at"]

        ann = s.get(srv.url + "/users/ann/reactions").json()["reactions"]
        assert [x["reaction"] for x in ann] == ["cry", "love"]  # newest first
        loved = s.get(srv.url + "/users/ann/reactions", params={"reaction": "love"}).json()
        assert [x["reaction"] for x in loved["reactions"]] == ["love"]
        summary = s.get(srv.url + "/articles/a-1/reactions/summary").json()
        assert summary["counts"] == {"love": 2, "like": 0, "angry": 0, "cry": 1}
        assert summary["total"] == 3

        bad_bodies = [b"not json", b"[1, 2]", b'{"user": "ann", "article": "a-1"}',
                      b'{"user": "a n", "article": "a-1", "reaction": "love"}',
                      b'{"user": "ann", "article": "a-1", "reaction": "meh"}']
        for body in bad_bodies:
            r = s.post(srv.url + "/reactions", data=body,
                       headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"], body
        r = s.get(srv.url + "/users/ann/reactions", params={"reaction": "meh"})
        assert (r.status_code, r.json()["field"]) == (400, "reaction")
        r = s.get(srv.url + "/users/ann/reactions", params={"limit": "0"})
        assert (r.status_code, r.json()["field"]) == (400, "limit")
        assert s.get(srv.url + "/nowhere").status_code == 404


def test_demo_api_regression_switch():
    """DEMO_API_REGRESSION makes every request ~30 ms slower and the summary answer 500."""
    with gunicorn_flask("gthread", regression=True) as srv, requests.Session() as s:
        r = s.post(srv.url + "/reactions", json={"user": "ann", "article": "a", "reaction": "like"})
        assert r.status_code == 201
        assert r.elapsed.total_seconds() >= 0.03
        r = s.get(srv.url + "/articles/a/reactions/summary")
        assert r.status_code == 500 and "error" in r.json()


def test_start_failure_shows_server_output():
    """A server that dies at start-up raises ServerStartError carrying its output."""
    with pytest.raises(ServerStartError, match="boom on port"):
        start_server("broken", lambda port, _: [
            sys.executable, "-c", f"import sys; sys.exit('boom on port {port}')"])


def test_prometheus_scrapes_itself():
    """Prometheus starts on a free port and its `up` series for itself becomes 1."""
    with prometheus([]) as prom:
        pids = prom.pids()
        result = prom.wait_for('up{job="prometheus"} == 1', timeout=20)
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{prom.port}"
    assert_gone(pids, prom.port)
