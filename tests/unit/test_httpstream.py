"""Unit tests for sidecar.capture.httpstream: per-connection HTTP/1.x reassembly, split-point invariance,
body caps, bad bytes and lost bytes. No root, no network."""

from __future__ import annotations

import dataclasses
import itertools
import tracemalloc

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from sidecar.capture.httpstream import Exchange, HttpConnectionParser
from sidecar.capture.metrics import CaptureMetrics

MiB = 1 << 20
BIN = bytes(range(256))

# One keep-alive connection as the server saw it, in order: what it read ("req") and wrote
# ("resp"). The Expect: 100-continue request is read in two parts around the interim 100.
CONVERSATION: list[tuple[str, bytes]] = [
    ("req", b"GET /items?x=1 HTTP/1.1\r\nHost: api\r\nUser-Agent: t/1\r\n\r\n"),
    ("resp", (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n"
              b'["HTTP/1.1 200 OK"]')),
    ("req", (b"POST /items HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
             b'Content-Length: 12\r\n\r\n{"name":"a"}')),
    ("resp", b'HTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{"id":1}'),
    ("req", (b"POST /upload HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")),
    ("resp", (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
              b"0\r\nX-Checksum: 7\r\n\r\n")),
    ("req", b"PUT /big HTTP/1.1\r\nHost: api\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"),
    ("resp", b"HTTP/1.1 100 Continue\r\n\r\n"),
    ("req", b"0123456789"),
    ("resp", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("req", b"HEAD /items HTTP/1.1\r\nHost: api\r\n\r\n"),
    ("resp", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n\r\n"),
    ("req", b"DELETE /items/1 HTTP/1.1\r\nHost: api\r\n\r\n"),
    ("resp", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("req", b"POST /bin HTTP/1.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 256\r\n\r\n" + BIN),
    ("resp", b"HTTP/1.1 200 OK\r\nContent-Length: 256\r\n\r\n" + BIN[::-1]),
    ("req", b"GET /last HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"),
    ("resp", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/"),
]
REQ = b"".join(b for d, b in CONVERSATION if d == "req")
RESP = b"".join(b for d, b in CONVERSATION if d == "resp")


def _ex(method, target, headers, body, status, resp_headers, resp_body, version="1.1"):
    return Exchange(method=method, target=target, version=version, headers=headers, body=body,
                    body_len=len(body), truncated=False, req_start_ns=0, req_end_ns=0,
                    status=status, resp_headers=resp_headers, resp_body=resp_body,
                    resp_body_len=len(resp_body), resp_truncated=False, resp_end_ns=0)


EXPECTED = [
    _ex("GET", "/items?x=1", [("Host", "api"), ("User-Agent", "t/1")], b"", 200,
        [("Content-Type", "application/json"), ("Content-Length", "19")], b'["HTTP/1.1 200 OK"]'),
    _ex("POST", "/items", [("Host", "api"), ("Content-Type", "application/json"),
                           ("Content-Length", "12")], b'{"name":"a"}', 201,
        [("Content-Length", "8")], b'{"id":1}'),
    _ex("POST", "/upload", [("Host", "api"), ("Transfer-Encoding", "chunked")], b"hello world",
        200, [("Transfer-Encoding", "chunked"), ("X-Checksum", "7")], b"ok"),
    _ex("PUT", "/big", [("Host", "api"), ("Expect", "100-continue"), ("Content-Length", "10")],
        b"0123456789", 204, [], b""),
    _ex("HEAD", "/items", [("Host", "api")], b"", 200,
        [("Content-Type", "application/json"), ("Content-Length", "1234")], b""),
    _ex("DELETE", "/items/1", [("Host", "api")], b"", 204, [], b""),
    _ex("POST", "/bin", [("Content-Type", "application/octet-stream"), ("Content-Length", "256")],
        BIN, 200, [("Content-Length", "256")], BIN[::-1]),
    _ex("GET", "/last", [("connection", "keep-alive")], b"", 200, [("Content-Length", "5")],
        b"HTTP/", version="1.0"),
]


def _need_table() -> list[int]:
    """For each response byte: how many request bytes the server had read before writing it."""
    need, read = [], 0
    for d, b in CONVERSATION:
        if d == "req":
            read += len(b)
        else:
            need += [read] * len(b)
    return need


NEED = _need_table()


def _pieces(data: bytes, cuts) -> list[tuple[int, bytes]]:
    """``data`` cut at ``cuts``: (end offset, bytes) of each piece."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [(b, data[a:b]) for a, b in itertools.pairwise(bounds)]


def _parser(metrics=None, max_body=MiB, **kw) -> HttpConnectionParser:
    return HttpConnectionParser(max_body=max_body, metrics=metrics or CaptureMetrics(), **kw)


def _run(req_cuts=(), resp_cuts=(), prefer_req=lambda: True) -> list[Exchange]:
    """Feed the conversation cut at the given points, in an order a real server could produce
    (a response piece only once the request bytes it answers were read), then close."""
    p, out, ts = _parser(), [], 0
    reqs, resps = _pieces(REQ, req_cuts), _pieces(RESP, resp_cuts)
    fed = 0
    while reqs or resps:
        resp_ok = bool(resps) and NEED[resps[0][0] - 1] <= fed
        if reqs and (not resp_ok or prefer_req()):
            fed, data = reqs.pop(0)
            p.feed_request(data, ts)
        else:
            out += p.feed_response(resps.pop(0)[1], ts)
        ts += 1
    assert p.broken is None
    return out + p.close(ts)


def _untimed(exchanges: list[Exchange]) -> list[Exchange]:
    return [dataclasses.replace(e, req_start_ns=0, req_end_ns=0, resp_end_ns=0) for e in exchanges]


def _sample(metrics: CaptureMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(f"rewind_capture_{name}_total", labels) or 0.0


# -- the literal exchange, whole and cut -----------------------------------------------------
def test_whole_conversation_gives_the_expected_exchanges():
    """Fed whole (request stream first), every request pairs with its response, field by field."""
    assert _untimed(_run()) == EXPECTED


def test_every_request_split_point_gives_the_same_exchanges():
    """Cutting the request stream at any single byte offset changes nothing."""
    for i in range(1, len(REQ)):
        assert _untimed(_run(req_cuts=[i])) == EXPECTED, i


def test_every_response_split_point_gives_the_same_exchanges():
    """Cutting the response stream at any single byte offset changes nothing, wherever the
    cut falls (inside a HEAD response, a chunk size, an interim 100, a body that looks like a
    status line)."""
    for j in range(1, len(RESP)):
        assert _untimed(_run(resp_cuts=[j])) == EXPECTED, j
        assert _untimed(_run(resp_cuts=[j], prefer_req=lambda: False)) == EXPECTED, j


def test_one_byte_at_a_time_in_both_streams():
    """Feeding both streams one byte per call, interleaved as a server would, changes nothing."""
    every = range(1, max(len(REQ), len(RESP)))
    assert _untimed(_run(every, every, prefer_req=lambda: False)) == EXPECTED
    assert _untimed(_run(every, [])) == EXPECTED


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    req_cuts=st.lists(st.integers(1, len(REQ) - 1), max_size=40),
    resp_cuts=st.lists(st.integers(1, len(RESP) - 1), max_size=40),
    data=st.data(),
)
def test_hypothesis_multiway_splits_and_interleavings(req_cuts, resp_cuts, data):
    """Any multi-way cut of both streams, interleaved in any causally possible order, gives
    the same exchanges as feeding them whole."""
    got = _run(req_cuts, resp_cuts, prefer_req=lambda: data.draw(st.booleans()))
    assert _untimed(got) == EXPECTED


def test_timestamps_come_from_the_feeds_carrying_first_and_last_bytes():
    """req_start_ns/req_end_ns/resp_end_ns are the ts of the feeds with the first/last bytes."""
    p = _parser()
    p.feed_request(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 10)
    p.feed_request(b"cd", 20)
    assert p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", 30) == []
    (ex,) = p.feed_response(b"k", 40)
    assert (ex.req_start_ns, ex.req_end_ns, ex.resp_end_ns) == (10, 20, 40)
    assert (ex.body, ex.resp_body) == (b"abcd", b"ok")


# -- pipelining, interim and early responses ---------------------------------------------------
def test_three_pipelined_requests_pair_fifo_with_responses_in_one_feed():
    """Three requests in one feed and their three responses in one feed pair in order."""
    p = _parser()
    p.feed_request(b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
                   b"GET /3 HTTP/1.1\r\n\r\n", 1)
    assert p.pending == 3
    out = p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                          b"HTTP/1.1 201 OK\r\nContent-Length: 1\r\n\r\nb"
                          b"HTTP/1.1 404 NF\r\nContent-Length: 1\r\n\r\nc", 2)
    assert [(e.target, e.body, e.status, e.resp_body) for e in out] == [
        ("/1", b"", 200, b"a"), ("/2", b"x", 201, b"b"), ("/3", b"", 404, b"c")]
    assert p.pending == 0 and p.close(3) == []


def test_interim_103_and_102_are_skipped_and_the_final_response_pairs():
    """103 Early Hints and 102 Processing are not answers; the 200 after them is."""
    p = _parser()
    p.feed_request(b"GET / HTTP/1.1\r\n\r\n", 1)
    out = p.feed_response(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                          b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                          2)
    assert [(e.status, e.resp_headers) for e in out] == [(200, [("Content-Length", "0")])]


def test_early_response_pairs_with_a_request_whose_body_is_still_arriving():
    """A 413 sent before the request body was read pairs with that request; close() returns it
    with the part of the body that arrived, the real length, and counts it incomplete."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"POST /up HTTP/1.1\r\nContent-Length: 1000\r\n\r\n0123456789", 1)
    assert p.feed_response(b"HTTP/1.1 413 Too Large\r\nConnection: close\r\n"
                           b"Content-Length: 0\r\n\r\n", 2) == []
    (ex,) = p.close(3)
    assert (ex.status, ex.body, ex.body_len, ex.truncated) == (413, b"0123456789", 1000, True)
    assert _sample(m, "incomplete_messages", reason="closed") == 1
    assert _sample(m, "unanswered_requests") == 0


def test_early_response_comes_out_once_its_request_completes():
    """When the request finishes after its response, the next feed_response returns it."""
    p = _parser()
    p.feed_request(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na", 1)
    assert p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2) == []
    p.feed_request(b"bc", 3)
    (ex,) = p.feed_response(b"", 4)
    assert (ex.body, ex.req_end_ns, ex.resp_end_ns) == (b"abc", 3, 2)


# -- bodies: cap and real length ----------------------------------------------------------------
def _chunks(total: int, size: int = 64 * 1024):
    for i in range(total // size):
        yield bytes([i % 251]) * size


@pytest.mark.parametrize("direction", ["request", "response"])
def test_ten_mib_body_with_one_mib_cap_keeps_a_one_mib_prefix(direction):
    """A 10 MiB body with max_body=1 MiB: 1 MiB prefix stored, real length kept, flagged and
    counted, and the parser never holds much more than the cap."""
    m = CaptureMetrics()
    p = _parser(m, max_body=MiB)
    head_req = b"POST /u HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (10 * MiB)
    head_resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (10 * MiB)
    tracemalloc.start()
    if direction == "request":
        p.feed_request(head_req, 1)
        for c in _chunks(10 * MiB):
            p.feed_request(c, 2)
        p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 3)
        (ex,) = p.feed_response(b"\r\n", 3)
        body, blen, cut = ex.body, ex.body_len, ex.truncated
    else:
        p.feed_request(b"GET / HTTP/1.1\r\n\r\n", 1)
        p.feed_response(head_resp, 2)
        out = [e for c in _chunks(10 * MiB) for e in p.feed_response(c, 3)]
        (ex,) = out
        body, blen, cut = ex.resp_body, ex.resp_body_len, ex.resp_truncated
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (len(body), blen, cut) == (MiB, 10 * MiB, True)
    assert body == b"".join(_chunks(MiB))
    assert peak < 3 * MiB  # the stored prefix plus about one chunk, never the 10 MiB
    assert _sample(m, "truncated_bodies", part=direction) == 1


def test_body_exactly_at_the_cap_is_stored_whole_and_not_truncated():
    """A 1 MiB body with max_body=1 MiB is kept exactly, not flagged, not counted."""
    m = CaptureMetrics()
    p = _parser(m, max_body=MiB)
    body = bytes(range(256)) * (MiB // 256)
    p.feed_request(b"PUT / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % MiB + body, 1)
    (ex,) = p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % MiB + body, 2)
    assert (ex.body == body, ex.body_len, ex.truncated) == (True, MiB, False)
    assert (ex.resp_body == body, ex.resp_body_len, ex.resp_truncated) == (True, MiB, False)
    assert _sample(m, "truncated_bodies", part="request") == 0
    assert _sample(m, "truncated_bodies", part="response") == 0


def test_chunked_body_over_the_cap_is_cut_across_chunks():
    """A chunked body longer than max_body keeps its first max_body de-chunked bytes."""
    p = _parser(max_body=5)
    p.feed_request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", 1)
    (ex,) = p.feed_response(b"HTTP/1.1 204 No Content\r\n\r\n", 2)
    assert (ex.body, ex.body_len, ex.truncated) == (b"abcde", 7, True)


# -- bad bytes ----------------------------------------------------------------------------------
BAD_REQUESTS = [  # name, bytes after one good request, reason, what close() returns
    ("tls_hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "invalid_method", ["/ok"]),
    ("unknown_method", b"FROB /x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method", ["/ok"]),
    ("huge_header_line", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n",
     "header_too_large", ["/ok"]),
    ("bad_chunk_size", b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
     "invalid_request", ["/ok", "/c"]),  # its headers were complete: back, flagged truncated
    ("bad_version", b"GET / HTTP/7.3\r\n\r\n", "invalid_request", ["/ok"]),
]


@pytest.mark.parametrize("piece", [None, 1024], ids=["whole", "1KiB_feeds"])
@pytest.mark.parametrize("name,bad,reason,back", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_bytes_mark_the_connection_count_once_and_keep_earlier_requests(
        name, bad, reason, back, piece):
    """Bad request bytes never raise: the connection gets a reason, one count, one warning;
    later bytes are ignored and the complete request before them still comes back."""
    m = CaptureMetrics()
    stream = b"GET /ok HTTP/1.1\r\n\r\n" + bad
    with capture_logs() as logs:
        p = _parser(m, log=structlog.get_logger())
        for i in range(0, len(stream), piece or len(stream)):
            p.feed_request(stream[i:i + (piece or len(stream))], 1)
        p.feed_request(b"GET /later HTTP/1.1\r\n\r\n", 2)
        assert p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3) == []
        out = p.close(4)
    assert p.broken == reason
    assert _sample(m, "parse_errors", reason=reason) == 1
    assert [e["reason"] for e in logs if e["log_level"] == "warning"] == [reason]
    assert [(e.target, e.status, e.truncated) for e in out] == [
        (t, 0, t != "/ok") for t in back]


def test_header_block_over_the_limit_fed_in_small_pieces_is_stopped_early():
    """An endless header line fed 1 KiB at a time is stopped soon after max_header_bytes."""
    p = _parser(max_header_bytes=8192)
    p.feed_request(b"GET / HTTP/1.1\r\nX: ", 1)
    fed = 0
    while p.broken is None and fed < MiB:
        p.feed_request(b"a" * 1024, 2)
        fed += 1024
    assert p.broken == "header_too_large" and fed <= 8192 + 2048


def test_garbage_response_marks_the_connection_and_the_request_comes_back_unanswered():
    """Garbage response bytes never raise; the request comes back from close() with status 0."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET / HTTP/1.1\r\n\r\n", 1)
    assert p.feed_response(b"\x00\x01garbage\r\n\r\n", 2) == []
    assert p.broken == "invalid_response"
    assert _sample(m, "parse_errors", reason="invalid_response") == 1
    assert [e.status for e in p.close(3)] == [0]
    assert _sample(m, "unanswered_requests") == 1


def test_bad_chunk_in_a_response_keeps_its_status_and_flags_the_body():
    """A response whose chunk framing goes bad after its headers keeps its status; its body is
    flagged truncated and the next response bytes are ignored."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1)
    (ex,) = p.feed_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"2\r\nok\r\nxyz\r\n", 2)
    assert (ex.target, ex.status, ex.resp_body, ex.resp_truncated) == ("/a", 200, b"ok", True)
    assert p.broken == "invalid_response"
    assert _sample(m, "parse_errors", reason="invalid_response") == 1
    assert p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3) == []
    assert [(e.target, e.status) for e in p.close(4)] == [("/b", 0)]


def test_response_without_a_request_is_unpaired():
    """A response when no request was read marks the connection 'unpaired_response'."""
    m = CaptureMetrics()
    p = _parser(m)
    assert p.feed_response(b"HTTP/1.1 408 Timeout\r\nContent-Length: 0\r\n\r\n", 1) == []
    assert p.broken == "unpaired_response"
    assert _sample(m, "parse_errors", reason="unpaired_response") == 1


# -- upgrades -----------------------------------------------------------------------------------
def test_switching_protocols_pairs_then_stops_parsing():
    """101 pairs with its request, then the connection is 'upgraded' and frames are ignored."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1)
    (ex,) = p.feed_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\n\r\n\x81\x05hello", 2)
    assert (ex.target, ex.status) == ("/ws", 101)
    p.feed_request(b"\x81\x85\x00\x00\x00\x00hello", 3)
    assert p.broken == "upgraded" and p.close(4) == []
    assert _sample(m, "parse_errors", reason="upgraded") == 1


def test_declined_upgrade_keeps_parsing_http_including_the_request_body():
    """An Upgrade: h2c request answered 200 (with a body llhttp skips) stays HTTP."""
    p = _parser()
    p.feed_request(b"POST /a HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                   b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nab", 1)
    p.feed_request(b"cGET /b HTTP/1.1\r\n\r\n", 2)
    out = p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"
                          b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", 3)
    assert [(e.target, e.body, e.resp_body) for e in out] == [("/a", b"abc", b"1"),
                                                                ("/b", b"", b"2")]
    assert p.broken is None


# -- close ----------------------------------------------------------------------------------------
def test_half_request_then_close_is_counted_incomplete():
    """A request cut inside its headers is not returned, but counted incomplete ('closed')."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET /half HTTP/1.1\r\nHo", 1)
    assert p.close(2) == []
    assert _sample(m, "incomplete_messages", reason="closed") == 1
    assert _sample(m, "unanswered_requests") == 0


def test_request_without_response_comes_back_with_status_zero():
    """A complete request the server never answered is returned by close() with status 0."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1)
    (first,) = p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2)
    assert p.pending == 1
    (ex,) = p.close(3)
    assert (first.target, ex.target, ex.status, ex.resp_end_ns) == ("/a", "/b", 0, 0)
    assert _sample(m, "unanswered_requests") == 1
    assert _sample(m, "incomplete_messages", reason="closed") == 0


def test_response_cut_by_close_keeps_its_status_and_prefix():
    """A response cut inside its Content-Length body: status kept, prefix flagged, counted."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET / HTTP/1.1\r\n\r\n", 1)
    p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 2)
    (ex,) = p.close(3)
    assert (ex.status, ex.resp_body, ex.resp_body_len, ex.resp_truncated) == (200, b"abc", 10, True)
    assert _sample(m, "incomplete_messages", reason="closed") == 1
    assert _sample(m, "unanswered_requests") == 0


def test_http10_response_without_length_is_finished_by_close():
    """An HTTP/1.0 response without Content-Length ends at close(), complete, not counted."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"GET /old HTTP/1.0\r\n\r\n", 1)
    assert p.feed_response(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ", 2) == []
    assert p.feed_response(b"world", 3) == []
    (ex,) = p.close(9)
    assert (ex.version, ex.status, ex.resp_body, ex.resp_body_len) == ("1.0", 200, b"hello world", 11)
    assert (ex.resp_truncated, ex.resp_end_ns) == (False, 3)
    assert _sample(m, "incomplete_messages", reason="closed") == 0


# -- lost bytes -----------------------------------------------------------------------------------
def test_lost_bytes_inside_a_request_body_keep_the_true_prefix_and_stay_in_sync():
    """A gap inside a Content-Length body: stored body is the prefix before it, real length
    kept, truncated; the next request on the connection parses normally."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(b"POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 30, 1)
    p.lost("request", 40, 2)
    p.feed_request(b"y" * 30 + b"GET /b HTTP/1.1\r\n\r\n", 3)
    out = p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 2, 4)
    assert [(e.target, e.body, e.body_len, e.truncated) for e in out] == [
        ("/a", b"x" * 30, 100, True), ("/b", b"", 0, False)]
    assert p.broken is None and _sample(m, "parse_errors", reason="lost_bytes") == 0


def test_lost_bytes_inside_a_response_body_and_until_close_body():
    """Gaps inside a Content-Length response body and a read-until-close body keep the prefix
    and count the missing bytes in the real length."""
    p = _parser()
    p.feed_request(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.0\r\n\r\n", 1)
    p.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 2)
    p.lost("response", 8, 3)
    (a,) = p.feed_response(b"HTTP/1.0 200 OK\r\n\r\nstart", 4)  # /a finished by the gap
    p.lost("response", 1000, 5)
    assert p.feed_response(b"end", 6) == []
    (b,) = p.close(7)
    assert (a.resp_body, a.resp_body_len, a.resp_truncated, a.resp_end_ns) == (b"ab", 10, True, 3)
    assert (b.resp_body, b.resp_body_len, b.resp_truncated) == (b"start", 1008, True)


@pytest.mark.parametrize("setup,direction,nbytes", [
    (b"GET / HTTP/1.1\r\nHo", "request", 10),  # inside headers
    (b"GET / HTTP/1.1\r\n\r\n", "request", 10),  # between messages
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", "request", 4),  # past the body's end
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "request", 1),  # chunked
    (b"GET / HTTP/1.1\r\n\r\n", "response", 3),  # inside the response's headers
], ids=["headers", "between", "past_body", "chunked", "response_headers"])
def test_lost_bytes_outside_a_known_body_break_the_connection(setup, direction, nbytes):
    """A gap where the framing cannot be recovered marks 'lost_bytes' and is counted."""
    m = CaptureMetrics()
    p = _parser(m)
    p.feed_request(setup, 1)
    if direction == "response":
        p.feed_response(b"HTTP/1.1 200 OK\r\nCon", 2)
    p.lost(direction, nbytes, 3)
    assert p.broken == "lost_bytes"
    assert _sample(m, "parse_errors", reason="lost_bytes") == 1
    half = setup.endswith(b"Ho") or b"ab" in setup or direction == "response"
    assert _sample(m, "incomplete_messages", reason="lost_bytes") == (1 if half else 0)
    p.feed_request(b"GET /next HTTP/1.1\r\n\r\n", 4)
    assert all(e.target != "/next" for e in p.close(5))


def test_constructor_rejects_bad_limits():
    """Negative max_body or non-positive max_header_bytes fail before any work starts."""
    with pytest.raises(ValueError, match="max_body"):
        _parser(max_body=-1)
    with pytest.raises(ValueError, match="max_header_bytes"):
        _parser(max_header_bytes=0)


def test_connect_answered_2xx_becomes_a_tunnel():
    """A 2xx to CONNECT pairs (it has no body) and the connection is then 'upgraded'."""
    p = _parser()
    p.feed_request(b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n", 1)
    (ex,) = p.feed_response(b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01", 2)
    assert (ex.method, ex.target, ex.status, ex.resp_body) == ("CONNECT", "db:5432", 200, b"")
    assert p.broken == "upgraded"


def test_pipelined_head_requests_with_chunked_and_unframed_answers():
    """HEAD answers carrying Transfer-Encoding or no length at all still end at their header
    block, so the responses behind them pair correctly."""
    p = _parser()
    p.feed_request(b"HEAD /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n", 1)
    out = p.feed_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 2)
    assert [(e.target, e.status, e.resp_body) for e in out] == [
        ("/a", 200, b""), ("/b", 200, b""), ("/c", 200, b"abc")]
    assert p.broken is None


BROKEN_REASONS = {"invalid_method", "invalid_request", "invalid_response", "header_too_large",
                  "unpaired_response", "upgraded", "lost_bytes"}


def _assert_clean_or_known_break(p: HttpConnectionParser, metrics: CaptureMetrics) -> None:
    """Clean (``broken is None``) means no parse error was counted; broken means one of the
    known reasons, counted once under that reason."""
    counted = {s.labels["reason"]: s.value for m in metrics.registry.collect()
               for s in m.samples if s.name == "rewind_capture_parse_errors_total" and s.value}
    if p.broken is None:
        assert counted == {}
    else:
        assert p.broken in BROKEN_REASONS and counted == {p.broken: 1}


@settings(max_examples=300, deadline=None)
@given(flips=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6), st.integers(0, 255)),
                      max_size=4),
       gap=st.none() | st.tuples(st.booleans(), st.integers(1, 300)),
       cut=st.integers(1, 200))
def test_mutated_streams_never_raise(flips, gap, cut):
    """Random byte changes and a random gap in the conversation never raise; the result is
    either clean (no parse error counted) or a known broken reason counted once, and close()
    always returns."""
    req, resp = bytearray(REQ), bytearray(RESP)
    for in_req, pos, value in flips:
        buf = req if in_req else resp
        buf[pos % len(buf)] = value
    metrics = CaptureMetrics()
    p = _parser(metrics, max_header_bytes=4096)
    for i in range(0, max(len(req), len(resp)), cut):
        p.feed_request(bytes(req[i:i + cut]), i)
        if gap and i == 0:
            p.lost("request" if gap[0] else "response", gap[1], i)
        p.feed_response(bytes(resp[i:i + cut]), i)
    p.close(10**6)
    _assert_clean_or_known_break(p, metrics)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048), st.binary(max_size=2048))
def test_random_bytes_never_raise(req, resp):
    """Arbitrary bytes in either stream never raise out of the parser; the result is clean or a
    known broken reason counted once."""
    metrics = CaptureMetrics()
    p = _parser(metrics)
    p.feed_request(req, 1)
    p.feed_response(resp, 2)
    p.close(3)
    _assert_clean_or_known_break(p, metrics)


def test_of_request_sets_every_field_by_name():
    """Exchange.of_request (the parser's per-request build) equals the keyword-built Exchange
    of a request not yet answered, so a field it forgets or mixes up fails here."""
    headers = [("Host", "api")]
    got = Exchange.of_request(method="PUT", target="/a?b=1", version="1.0", headers=headers,
                              req_start_ns=7)
    assert got == Exchange(method="PUT", target="/a?b=1", version="1.0", headers=headers, body=b"",
                           body_len=0, truncated=False, req_start_ns=7, req_end_ns=0)
