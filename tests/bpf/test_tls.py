"""HTTPS capture through libssl uprobes (--tls): nginx (SSL_read/SSL_write) and Python's ssl
module (SSL_read_ex/SSL_write_ex), hit by curl, by requests and by a raw TLS socket, byte-exact;
plain HTTP on the same nginx in the same capture; a target process without libssl reported.
One capture (one probe compile) serves the whole module."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request
from tests.support.servers import asyncio_https_server, nginx, python_http_server, start_server

MiB = 1 << 20
BODY = hashlib.sha256(b"tls").digest() * (MiB // 32)  # 1 MiB
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
# A listener in a process that never loads libssl (-I -S: no site, no ssl module).
_BARE = ("import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); "
         "s.listen(); time.sleep(3600)")


@pytest.fixture(scope="module")
def tls(redis_srv):
    with nginx("echo_len", tls=True) as ngx, python_http_server(tls=True) as py, \
            asyncio_https_server() as aio, \
            start_server("bare", lambda port, _: [sys.executable, "-I", "-S", "-c", _BARE,
                                                  str(port)]) as bare:
        stream = new_stream("tls")
        ports = f"{ngx.port},{ngx.plain_port},{py.port},{aio.port},{bare.port}"
        early = requests.Session()  # a keep-alive HTTPS connection older than the capture
        assert early.get(f"{ngx.url}/early/0", verify=False, timeout=10).status_code == 200
        with early, CaptureProcess(ports, redis_srv.url, stream, "--tls") as cap:
            cap.reader = StreamReader(redis_srv.client(), stream)
            yield SimpleNamespace(cap=cap, ngx=ngx, py=py, aio=aio, bare=bare, early=early)
        assert cap.proc.returncode == 0, cap.log_text()


def under(prefix: str):
    return lambda r: r.target.startswith(prefix)


def _curl(tmp_path, url: str, prefix: str) -> bytes:
    """Two requests on one connection: a GET, then a 1 MiB POST; returns what curl received."""
    body = tmp_path / "body.bin"
    body.write_bytes(BODY)
    return subprocess.run(
        ["curl", "-sS", "-k", f"{url}{prefix}get?q=1", "--next", "-k", "--data-binary",
         f"@{body}", "-H", "Content-Type: application/octet-stream", f"{url}{prefix}post"],
        capture_output=True, check=True, timeout=30).stdout


def _requests(url: str, prefix: str) -> list[requests.Response]:
    """A keep-alive requests.Session over HTTPS: GET, 1 MiB POST, GET."""
    with requests.Session() as s:
        return [s.get(f"{url}{prefix}a", verify=False, timeout=10),
                s.post(f"{url}{prefix}b", data=BODY, verify=False, timeout=30,
                       headers={"X-Trace": "t-1"}),
                s.get(f"{url}{prefix}c?x=y", verify=False, timeout=10)]


def _check_curl(recs, got: bytes, prefix: str) -> None:
    assert [(r.method, r.target) for r in recs] == [("GET", f"{prefix}get?q=1"),
                                                     ("POST", f"{prefix}post")]
    assert len({r.conn for r in recs}) == 1 and [r.seq for r in recs] == [0, 1]
    assert recs[1].body == BODY and recs[1].body_len == MiB and not recs[1].truncated
    assert ("Content-Type", "application/octet-stream") in recs[1].headers
    assert recs[0].headers[1][1].startswith("curl/")
    assert b"".join(r.resp_body for r in recs) == got
    assert all(r.tls and r.status == 200 for r in recs)


def _check_requests(recs, got: list[requests.Response], prefix: str) -> None:
    assert [(r.method, r.target) for r in recs] == [("GET", f"{prefix}a"), ("POST", f"{prefix}b"),
                                                     ("GET", f"{prefix}c?x=y")]
    assert len({r.conn for r in recs}) == 1 and [r.seq for r in recs] == [0, 1, 2]
    assert recs[1].body == BODY and recs[1].body_len == MiB
    assert [r.resp_body for r in recs] == [g.content for g in got]
    assert [r.status for r in recs] == [g.status_code for g in got] == [200] * 3
    sent = got[1].request.headers
    assert [h for h in recs[1].headers if h[0] != "Host"] == list(sent.items())
    assert all(r.tls for r in recs)


def test_nginx_https_curl_and_requests_exact(tls, tmp_path):
    """nginx over HTTPS (SSL_read/SSL_write): curl's two requests on one connection and a
    requests.Session's three, each with a 1 MiB body, come back exact, flagged tls."""
    got_curl = _curl(tmp_path, tls.ngx.url, "/ngx/curl/")
    got_req = _requests(tls.ngx.url, "/ngx/req/")
    assert got_curl == b"0\n1048576\n"
    _check_curl(tls.cap.reader.wait(under("/ngx/curl/"), 2), got_curl, "/ngx/curl/")
    _check_requests(tls.cap.reader.wait(under("/ngx/req/"), 3), got_req, "/ngx/req/")


def test_python_ssl_server_curl_requests_and_raw_socket_exact(tls, tmp_path):
    """Python's ssl module (SSL_read_ex/SSL_write_ex): curl, requests and a raw TLS socket whose
    request bytes are known; records equal what the client sent and the server echoed."""
    got_curl = _curl(tmp_path, tls.py.url, "/py/curl/")
    got_req = _requests(tls.py.url, "/py/req/")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    raws = [request("POST", "/py/raw/1", BODY, [("X-A", "1")]), request("GET", "/py/raw/2")]
    with ctx.wrap_socket(connect(tls.py.port)) as s:
        got_raw = []
        for raw in raws:
            s.sendall(raw)
            got_raw += read_responses(s, 1)

    _check_curl(tls.cap.reader.wait(under("/py/curl/"), 2), got_curl, "/py/curl/")
    recs = tls.cap.reader.wait(under("/py/req/"), 3)
    _check_requests(recs, got_req, "/py/req/")
    echoed = json.loads(got_req[1].content)["headers"]
    assert [list(h) for h in recs[1].headers] == echoed
    recs = tls.cap.reader.wait(under("/py/raw/"), 2)
    assert [r.request_bytes() for r in recs] == raws
    assert [r.resp_body for r in recs] == [bytes(g.body) for g in got_raw]
    assert all(r.tls for r in recs) and len({r.conn for r in recs}) == 1


def test_asyncio_memory_bio_server_exact(tls, tmp_path):
    """asyncio's TLS (memory BIOs: no SSL_set_fd, no syscall inside SSL_read) is tied to its
    connection by the read just before SSL_read: curl and requests records are exact."""
    got_curl = _curl(tmp_path, tls.aio.url, "/aio/curl/")
    got_req = _requests(tls.aio.url, "/aio/req/")
    _check_curl(tls.cap.reader.wait(under("/aio/curl/"), 2), got_curl, "/aio/curl/")
    recs = tls.cap.reader.wait(under("/aio/req/"), 3)
    _check_requests(recs, got_req, "/aio/req/")
    assert [list(h) for h in recs[1].headers] == json.loads(got_req[1].content)["headers"]


def test_plain_and_tls_connections_of_one_nginx(tls):
    """The same nginx on a plain port and a TLS port, in one capture: both are captured, the
    plain one with tls false, and no TLS connection became a parse error."""
    plain = f"http://127.0.0.1:{tls.ngx.plain_port}"
    with requests.Session() as s:
        got = [s.post(f"{plain}/mix/plain", data=b"p" * 100, timeout=10),
               s.post(f"{tls.ngx.url}/mix/tls", data=b"t" * 100, verify=False, timeout=10)]
    recs = tls.cap.reader.wait(under("/mix/"), 2)
    assert sorted((r.target, r.tls, r.resp_body) for r in recs) == [
        ("/mix/plain", False, got[0].content), ("/mix/tls", True, got[1].content)]
    assert {int(r.conn.split(":")[1]) for r in recs} <= set(tls.ngx.pids())
    for reason in ("tls", "tls_undecrypted", "invalid_method", "lost_bytes"):
        assert tls.cap.metric("rewind_capture_parse_errors_total", reason=reason) == 0
    assert tls.cap.metric("rewind_capture_tls_libraries") >= 1
    assert tls.cap.events("capture.tls_attached")


def test_process_without_libssl_is_reported(tls):
    """A target process that maps no libssl is named once in the log (pid, exe) and counted in
    rewind_capture_tls_unsupported_processes; the ones with libssl are not."""
    (pid,) = tls.bare.pids()
    with open(f"/proc/{pid}/maps") as f:
        assert "libssl" not in f.read()
    lines = tls.cap.events("capture.tls_unsupported")
    assert [(e["pid"], e["exe"]) for e in lines] == [(pid, os.readlink(f"/proc/{pid}/exe"))]
    assert tls.cap.metric("rewind_capture_tls_unsupported_processes") == 1


def test_https_connection_open_before_capture(tls):
    """A keep-alive HTTPS connection opened before capture started (no SSL_set_fd seen) is
    picked up at its next request: the fd is learnt from the syscall inside SSL_read."""
    got = tls.early.post(f"{tls.ngx.url}/early/1", data=b"e" * 5000, verify=False, timeout=10)
    (rec,) = tls.cap.reader.wait(under("/early/"), 1)
    assert (rec.target, rec.body, rec.resp_body, rec.tls) == ("/early/1", b"e" * 5000,
                                                              got.content, True)


def test_new_nginx_workers_are_hooked_in_the_rescan(tls):
    """After nginx reloads (SIGHUP: new workers, old ones exit), the new workers' libssl is
    hooked within the rescan and their HTTPS requests are captured."""
    old = set(tls.ngx.pids())
    os.kill(tls.ngx.popen.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        new = set(tls.ngx.pids()) - old
        if len(new) == 2 and all(any(e["pid"] == p for e in tls.cap.events("capture.tls_attached"))
                                 for p in new):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"new workers not hooked: {tls.cap.log_text()}")
    with requests.Session() as s:
        got = s.get(f"{tls.ngx.url}/reloaded", verify=False, timeout=10)
    (rec,) = tls.cap.reader.wait(under("/reloaded"), 1)
    assert rec.tls and rec.resp_body == got.content
    assert int(rec.conn.split(":")[1]) in new
