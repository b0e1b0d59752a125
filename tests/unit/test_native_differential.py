"""The native hot path (sidecar.capture._native, what rewind-capture runs) against the Python
reference (conntrack.ConnectionTracker on httpstream.HttpConnectionParser): on generated traffic
both must publish the same records, count the same counters and log the same lines."""

from __future__ import annotations

import ctypes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.capture.clock import Clock
from sidecar.capture.conntrack import ConnectionTracker
from sidecar.capture.events import decode
from sidecar.capture.metrics import CaptureMetrics
from sidecar.capture.native import NativeTracker
from sidecar.capture.ringbuf import RingBuffer, record_span
from tests.support.probe_events import T0, Sendfiles, operations

WALL0 = 1_800_000_000_000_000_000


class _Reference:
    """The Python path as the capture loop ran it: decode, track, count a failure as "internal"."""

    def __init__(self, metrics: CaptureMetrics, **kw) -> None:
        self.t = ConnectionTracker(metrics=metrics, **kw)
        self.m = metrics
        self.events = 0

    def __call__(self, raw) -> None:
        self.events += 1
        try:
            self.t.on_event(decode(raw))
        except Exception:
            self.m.parse_errors.labels("internal").inc()
            self.t._log.exception("capture.event_failed")

    def flush_metrics(self) -> None:
        self.t.flush_metrics()
        self.m.events.inc(self.events)
        self.events = 0


def _run(kind: str, ops, files: Sendfiles, max_body: int, max_hdr: int, tls: bool,
         batched: bool = False):
    """Feed ``ops`` to one implementation; (records, metric samples, log lines). ``batched``:
    the native tracker hands records over with emit_many (as to the publisher), else emit."""
    metrics = CaptureMetrics(CollectorRegistry())
    records: list = []
    kw = dict(emit=records.append, node="n1", max_body=max_body, max_header_bytes=max_hdr,
              idle_timeout_s=1e-3, clock=Clock(wall=lambda: WALL0, mono=lambda: T0 + 10**9),
              read_sendfile=files.read, find_peer=lambda tgid, fd: f"peer-{tgid}-{fd}", tls=tls)
    if kind == "native":
        tracker = feed = NativeTracker(metrics=metrics, emit_many=records.extend if batched else None,
                                       **kw)
    else:
        feed = _Reference(metrics, **kw)
        tracker = feed.t
    with capture_logs() as logs:
        for op in ops:
            if op[0] == "event":
                feed(op[1])
            elif op[0] == "seed":
                tracker.seed(*op[1:])
            elif op[0] == "expire":
                tracker.expire(op[1])
            elif op[0] == "forget":
                tracker.forget_processes(lambda tgid, dead=op[1]: tgid not in dead)
        tracker.flush()
        feed.flush_metrics()
    return records, _samples(metrics), [_plain(e) for e in logs]


def _samples(metrics: CaptureMetrics) -> dict:
    out = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if not s.name.startswith(("process_", "python_")) and not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _plain(entry: dict) -> dict:
    """A log line without its exception object (the two paths raise different ones)."""
    return {k: v for k, v in entry.items() if k != "exc_info"}


def _same(ops, files, max_body, max_hdr, tls, batched=False) -> None:
    ref = _run("reference", ops, files, max_body, max_hdr, tls)
    nat = _run("native", ops, files, max_body, max_hdr, tls, batched)
    assert nat[0] == ref[0]  # records, in order, field by field
    assert nat[1] == ref[1]  # every counter and gauge
    assert nat[2] == ref[2]  # log lines


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(operations(), st.sampled_from([0, 5, 32, 1 << 20, 1 << 20]),
       st.sampled_from([48, 120, 65536, 65536]), st.booleans(), st.booleans())
def test_native_and_reference_agree_on_generated_traffic(drawn, max_body, max_hdr, tls, batched):
    """Random conversations (pipelined, chunked, 1xx/HEAD/204/304, close-delimited, upgrades,
    bad bytes), cut at random points, with lost chunks, TLS plaintext, sendfile, reused fds and
    housekeeping in between: the native path publishes exactly the reference's records, with
    the same counters and log lines."""
    ops, files = drawn
    _same(ops, files, max_body, max_hdr, tls, batched)


def test_a_plain_keep_alive_connection_agrees_and_publishes():
    """A literal keep-alive connection gives the same two records on both paths (a sanity
    check that the generated test compares something)."""
    from tests.support.probe_events import event

    req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
    resp = (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nB\r\n0\r\n\r\n")
    ops = [("event", event(1, 700, 5, T0, family=2, port=1234, addr=bytes([10, 0, 0, 1]))),
           ("event", event(2, 700, 5, T0 + 10, data=req, total=len(req))),
           ("event", event(2, 700, 5, T0 + 20, data=resp, total=len(resp), d=1)),
           ("event", event(3, 700, 5, T0 + 30, pos=len(req), total=len(resp)))]
    _same(ops, Sendfiles(), 1 << 20, 65536, False)
    records = _run("native", ops, Sendfiles(), 1 << 20, 65536, False)[0]
    assert [(r.method, r.target, r.body, r.status, r.resp_body, r.client, r.seq) for r in records] \
        == [("GET", "/a", b"", 200, b"A", "10.0.0.1:1234", 0),
            ("POST", "/b", b"hi", 201, b"B", "10.0.0.1:1234", 1)]


# -- the ring buffer walk ----------------------------------------------------------------------
def _ring(payloads: list[bytes], busy_at: int | None = None, discard: frozenset = frozenset(),
          start: int = 0, size: int = 4096):
    """A ring buffer laid out as the kernel does (data mapped twice), from ``start``."""
    mem = bytearray(2 * size)
    pos = start
    for i, p in enumerate(payloads):
        word = len(p) | (1 << 31 if i == busy_at else 0) | (1 << 30 if i in discard else 0)
        rec = word.to_bytes(4, "little") + bytes(4) + p
        for j, b in enumerate(rec):
            mem[(pos + j) % size] = mem[(pos + j) % size + size] = b
        pos += record_span(len(p))
    return ctypes.c_uint64(start), ctypes.c_uint64(pos), mem, size


@given(st.lists(st.integers(3, 10_000), unique=True, max_size=12), st.integers(0, 4095),
       st.one_of(st.none(), st.integers(0, 11)), st.frozensets(st.integers(0, 11)),
       st.integers(0, 5))
def test_native_ring_walk_hands_over_what_the_python_reader_does(fds, start, busy, discard, limit):
    """Over a ring buffer with wrapped, BUSY and discarded records, the native walk handles the
    same records in the same order, stops at the same place and leaves the same consumer
    position as RingBuffer.consume (each record accepts a connection on its own fd)."""
    from tests.support.probe_events import event

    payloads = [event(1, 700, fd, T0 + fd) for fd in fds]
    start &= ~7
    seen: list[int] = []
    cons, prod, mem, size = _ring(payloads, busy, discard, start)
    n_py = RingBuffer(cons, prod, memoryview(mem), size).consume(
        lambda v: seen.append(decode(v).fd), limit)
    end_py = cons.value

    cons, prod, mem, size = _ring(payloads, busy, discard, start)
    tracker = NativeTracker(emit=print, metrics=CaptureMetrics(CollectorRegistry()), node="n",
                            max_body=0)
    n_native = RingBuffer(cons, prod, memoryview(mem), size).consume(tracker, limit)
    assert (n_native, cons.value) == (n_py, end_py)
    assert [fd for _, fd in tracker.expire(T0 + 10**12)] == seen
