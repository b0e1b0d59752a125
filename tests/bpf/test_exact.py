"""Byte-exact capture of what real clients sent to a real server (Python's http.server), through
the real probe, sidecar and Redis."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request

MiB = 1 << 20


def under(prefix: str):
    return lambda r: r.target.startswith(prefix)


def test_keep_alive_requests_are_exact_and_ordered(echo_server, echo_capture):
    """Five requests on one keep-alive connection give five byte-exact records, in order, with
    one connection id, sequence numbers 0..4, and the response the client received."""
    s = connect(echo_server.port)
    sent, got = [], []
    for i in range(5):
        body = b"x" * (i * 10) if i % 2 else b""
        raw = request("POST" if i % 2 else "GET", f"/ka/{i}?q={i}", body, [("X-Seq", str(i))])
        s.sendall(raw)
        sent.append(raw)
        got += read_responses(s, 1)
    s.close()
    recs = echo_capture.reader.wait(under("/ka/"), 5)
    assert [r.request_bytes() for r in recs] == sent
    assert len({r.conn for r in recs}) == 1
    assert [r.seq for r in recs] == [0, 1, 2, 3, 4]
    assert [r.resp_body for r in recs] == [bytes(g.body) for g in got]
    assert all(r.status == 200 and r.latency_us > 0 for r in recs)
    assert recs[0].client.startswith("127.0.0.1:")
    assert abs(recs[0].ts_ns / 1e9 - time.time()) < 60


def test_three_pipelined_requests_in_one_write(echo_server, echo_capture):
    """Three requests written with one send() come back as three records, each exact."""
    reqs = [request("GET", "/pipe/a"), request("POST", "/pipe/b", b"bee"), request("GET", "/pipe/c")]
    s = connect(echo_server.port)
    s.sendall(b"".join(reqs))
    responses = read_responses(s, 3)
    s.close()
    recs = echo_capture.reader.wait(under("/pipe/"), 3)
    assert [r.request_bytes() for r in recs] == reqs
    assert [r.seq for r in recs] == [0, 1, 2]
    assert [r.resp_body for r in recs] == [bytes(x.body) for x in responses]


def test_chunked_request_body(echo_server, echo_capture):
    """A chunked request body is stored de-chunked, with the headers exactly as sent."""
    head = (b"POST /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: text/plain\r\n\r\n")
    s = connect(echo_server.port)
    s.sendall(head + b"5\r\nhello\r\n")
    time.sleep(0.05)
    s.sendall(b"6\r\n world\r\n0\r\n\r\n")
    (resp,) = read_responses(s, 1)
    s.close()
    (rec,) = echo_capture.reader.wait(under("/chunked"), 1)
    assert rec.body == b"hello world" and rec.body_len == 11 and not rec.truncated
    assert rec.headers == [("Host", "127.0.0.1"), ("Transfer-Encoding", "chunked"),
                           ("Content-Type", "text/plain")]
    assert json.loads(resp.body)["body_len"] == 11


def test_expect_100_continue(echo_server, echo_capture):
    """A request with Expect: 100-continue is one record with its body and the final status."""
    body = b"after-the-100" * 100
    head = request("PUT", "/expect", body, [("Expect", "100-continue")])[: -len(body)]
    s = connect(echo_server.port)
    s.sendall(head)
    (interim,) = read_responses(s, 1, include_interim=True)
    assert interim.status == 100
    s.sendall(body)
    (final,) = read_responses(s, 1)
    s.close()
    (rec,) = echo_capture.reader.wait(under("/expect"), 1)
    assert rec.request_bytes() == head + body
    assert rec.status == final.status == 200
    assert rec.resp_body == bytes(final.body)


@pytest.mark.parametrize("size", [0, 1, 64 * 1024, MiB])
def test_body_sizes_exact(echo_server, echo_capture, size):
    """Bodies of 0 B, 1 B, 64 KiB and 1 MiB (the default cap) are stored whole and exact."""
    body = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    body = body[:size]
    raw = request("POST", f"/size/{size}", body)
    s = connect(echo_server.port)
    s.sendall(raw)
    (resp,) = read_responses(s, 1)
    s.close()
    (rec,) = echo_capture.reader.wait(under(f"/size/{size}"), 1)
    assert rec.body == body and rec.body_len == size and not rec.truncated
    assert rec.request_bytes() == raw
    assert json.loads(resp.body)["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_ten_mib_body_is_truncated_with_real_length(echo_server, echo_capture):
    """A 10 MiB body is stored as its first 1 MiB, flagged truncated, real length kept, and
    counted in rewind_capture_truncated_bodies_total."""
    before = echo_capture.metric("rewind_capture_truncated_bodies_total", part="request")
    body = bytes(range(256)) * (10 * MiB // 256)
    s = connect(echo_server.port)
    s.sendall(request("POST", "/big", body))
    (resp,) = read_responses(s, 1)
    s.close()
    assert json.loads(resp.body)["body_len"] == 10 * MiB
    (rec,) = echo_capture.reader.wait(under("/big"), 1, timeout=60)
    assert rec.truncated and rec.body_len == 10 * MiB and rec.body == body[:MiB]
    assert echo_capture.metric("rewind_capture_truncated_bodies_total", part="request") == before + 1


def test_all_256_byte_values(echo_server, echo_capture):
    """A body holding every byte value survives capture, Redis and decoding unchanged."""
    body = bytes(range(256)) * 3
    raw = request("POST", "/bytes", body, [("Content-Type", "application/octet-stream")])
    s = connect(echo_server.port)
    s.sendall(raw)
    read_responses(s, 1)
    s.close()
    (rec,) = echo_capture.reader.wait(under("/bytes"), 1)
    assert rec.body == body and rec.request_bytes() == raw


def test_request_written_one_byte_at_a_time(echo_server, echo_capture):
    """A request sent one byte per write is reassembled exactly."""
    raw = request("POST", "/trickle?x=1", b'{"slow": true}', [("X-Trickle", "yes")])
    s = connect(echo_server.port)
    for i in range(len(raw)):
        s.send(raw[i:i + 1])
        time.sleep(0.001)
    read_responses(s, 1)
    s.close()
    (rec,) = echo_capture.reader.wait(under("/trickle"), 1)
    assert rec.request_bytes() == raw


def test_200_connections_of_50_requests_none_missing(echo_server, echo_capture):
    """200 concurrent keep-alive connections each sending 50 requests: all 10,000 are captured,
    each exactly once, and each connection's records are in the order they were sent."""
    conns, per_conn = 200, 50
    errors = []

    def client(c: int) -> None:
        try:
            s = connect(echo_server.port, timeout=60)
            for i in range(per_conn):
                s.sendall(request("GET", f"/conc/{c}/{i}"))
                read_responses(s, 1)
            s.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors[:3]
    recs = echo_capture.reader.wait(under("/conc/"), conns * per_conn, timeout=120)
    targets = [r.target for r in recs]
    assert len(targets) == len(set(targets)) == conns * per_conn
    by_conn: dict[str, list] = {}
    for r in recs:
        by_conn.setdefault(r.conn, []).append(r)
    assert len(by_conn) == conns
    for rs in by_conn.values():
        rs.sort(key=lambda r: r.seq)
        assert [int(r.target.rsplit("/", 1)[1]) for r in rs] == list(range(per_conn))


def test_connection_open_before_capture_started(echo_server, redis_srv):
    """A keep-alive connection opened before capture started is seeded from /proc, and its next
    requests are captured."""
    s = connect(echo_server.port)
    s.sendall(request("GET", "/seeded/before"))
    read_responses(s, 1)
    stream = new_stream("seeded")
    with CaptureProcess(echo_server.port, redis_srv.url, stream) as cap:
        assert cap.wait_log("capture.ready")["seeded"] >= 1
        raw = request("POST", "/seeded/after", b"still here")
        s.sendall(raw)
        read_responses(s, 1)
        s.close()
        reader = StreamReader(redis_srv.client(), stream)
        recs = reader.wait(under("/seeded/"), 1)
    assert [r.request_bytes() for r in recs] == [raw]
    assert cap.proc.returncode == 0
