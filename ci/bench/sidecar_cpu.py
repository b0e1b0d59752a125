"""CPU the sidecar's userspace spends per captured request, without the kernel or wrk.

The event byte stream the probe emits for wrk against nginx ``return 200`` (EV_ACCEPT, one
EV_DATA per read and per write, EV_CLOSE; layout of bpf/capture.h) is synthesized for
``--conns`` keep-alive connections, written into an in-memory ring buffer with the kernel's
layout, and read by the real ``RingBuffer`` into the tracker rewind-capture runs (the native hot
path, sidecar/capture/native.py: decoding, connection tracking, HTTP parsing, Records) ->
redaction (default policy) -> publisher, in three set-ups:

* ``track``: records go nowhere (ring buffer, decode, tracking, parsing, Record);
* ``pack``: + default redaction + the publisher's packing of each record into an XADD;
* ``redis``: + the real Publisher thread writing to a real redis-server (CPU of every thread of
  this process, Redis's own CPU not counted), until every record is in the stream.

    .venv/bin/python ci/bench/sidecar_cpu.py [--requests 20000] [--out bench-results/sidecar.json]

Prints microseconds of CPU per request (process time, best of ``--runs``); ``--profile SETUP``
prints a cProfile of one run instead (it does not see inside the native code: for that,
``py-spy record --native --threads -- python ci/bench/sidecar_cpu.py``). ``--reference`` runs
the Python reference tracker (conntrack.py on httpstream.py, tests only) in place of the
native one, for a before/after in one session.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ci.bench.lib import write_result  # noqa: E402
from sidecar.capture.loop import Capture, CaptureConfig  # noqa: E402
from sidecar.capture.events import _HEADER, Direction, Kind  # noqa: E402
from sidecar.capture.metrics import CaptureMetrics  # noqa: E402
from sidecar.capture.publisher import Publisher  # noqa: E402
from sidecar.redact.policy import parse_policy  # noqa: E402
from sidecar.redact.setup import RedactingPublisher  # noqa: E402
from sidecar.capture.ringbuf import BUSY_BIT, HDR_SIZE, RingBuffer, record_span  # noqa: E402

# what wrk sends and nginx `return 200 "ok"` answers (default_type text/plain)
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 23:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
TGID = 4242


def event(kind: int, fd: int, ts: int, *, pos: int = 0, total: int = 0, d: int = 0,
          data: bytes = b"", family: int = 0, port: int = 0, addr: bytes = b"") -> bytes:
    """One ``struct event`` as the probe emits it (the fixed part, then ``len`` payload bytes)."""
    return _HEADER.pack(ts, pos, total, 0, 0, TGID, fd, len(data), kind, d, family, port,
                        addr.ljust(16, b"\0"), 0) + data


def traffic(requests: int, conns: int) -> list[bytes]:
    """Events of ``requests`` keep-alive requests spread round-robin over ``conns`` connections
    (``pos``: stream offset of the chunk's first byte, as conntrack reads it)."""
    out, ts = [], 1_000_000_000
    per = [requests // conns + (i < requests % conns) for i in range(conns)]
    for c in range(conns):
        out.append(event(Kind.ACCEPT, 100 + c, ts, family=2, port=40000 + c,
                         addr=bytes([127, 0, 0, 1])))
    for r in range(max(per)):
        for c in range(conns):
            if r < per[c]:
                ts += 10_000
                out.append(event(Kind.DATA, 100 + c, ts, pos=r * len(REQUEST), total=len(REQUEST),
                                 d=Direction.INGRESS, data=REQUEST))
                ts += 10_000
                out.append(event(Kind.DATA, 100 + c, ts, pos=r * len(RESPONSE),
                                 total=len(RESPONSE),
                                 d=Direction.EGRESS, data=RESPONSE))
    for c in range(conns):
        out.append(event(Kind.CLOSE, 100 + c, ts, pos=per[c] * len(REQUEST),
                         total=per[c] * len(RESPONSE)))
    return out


def ring_of(events: list[bytes]) -> RingBuffer:
    """A ring buffer holding every event, committed, as the kernel lays them out."""
    need = sum(record_span(len(e)) for e in events)
    size = 1 << max(12, need.bit_length())
    mem = bytearray(2 * size)
    pos = 0
    for e in events:
        mem[pos:pos + 4] = len(e).to_bytes(4, "little")
        mem[pos + HDR_SIZE:pos + HDR_SIZE + len(e)] = e
        pos += record_span(len(e))
    assert not BUSY_BIT & len(events[0])
    return RingBuffer(ctypes.c_uint64(0), ctypes.c_uint64(pos), memoryview(mem), size)


class _NoProbe:
    def __init__(self, handler) -> None:
        pass


class _Finder:
    pass


class _Packer:
    """The publisher's per-record work without the network: the XADD packing of ``_send``."""

    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher
        self.n = 0

    def put(self, record) -> None:
        self._pub._pack_batch([record])
        self.n += 1


def capture_with(put_target, metrics: CaptureMetrics, redact: bool) -> Capture:
    sink = put_target
    if redact:
        sink = RedactingPublisher(put_target, parse_policy(""), b"k" * 32,
                                  registry=metrics.registry, log=_null_log())
    return Capture(CaptureConfig(port=8080, node="bench"), finder=_Finder(), publisher=sink,
                   metrics=metrics, probe_factory=_NoProbe, log=_null_log())


def _null_log():
    import structlog
    return structlog.get_logger("bench")


class _Count:
    def __init__(self) -> None:
        self.n = 0

    def put(self, record) -> None:
        self.n += 1


class _Reference:
    """The Python reference tracker fed record by record, as the capture loop ran it."""

    def __init__(self, cap: Capture, metrics: CaptureMetrics, sink) -> None:
        from sidecar.capture.conntrack import ConnectionTracker
        from sidecar.capture.events import decode
        self._decode = decode
        self.tracker = ConnectionTracker(emit=sink.put, metrics=metrics, node="bench",
                                         max_body=cap.cfg.max_body, log=_null_log())

    def __call__(self, raw) -> None:
        self.tracker.on_event(self._decode(raw))

    def flush_metrics(self) -> None:
        self.tracker.flush_metrics()


def run(mode: str, events: list[bytes], requests: int, redis_url: str | None,
        reference: bool = False) -> float:
    """µs of CPU per request for one pass over ``events``."""
    metrics = CaptureMetrics()
    publisher = None
    if mode == "track":
        sink = _Count()
        cap = capture_with(sink, metrics, redact=False)
    elif mode == "pack":
        from sidecar.common.redis_client import connect
        sink = _Packer(Publisher(connect("redis://127.0.0.1:1"), "bench", metrics=metrics))
        cap = capture_with(sink, metrics, redact=True)
    else:
        from sidecar.common.redis_client import connect
        client = connect(redis_url)
        client.delete("rewind:{bench}:http")
        publisher = sink = Publisher(client, "bench", metrics=metrics, maxlen=10 * requests)
        publisher.start()
        cap = capture_with(sink, metrics, redact=True)
    tracker = _Reference(cap, metrics, cap._publisher) if reference else cap.tracker
    ring = ring_of(events)
    t0 = time.process_time()
    ring.consume(tracker)
    tracker.flush_metrics()
    if publisher is not None:
        publisher.flush(60.0)
    cpu = time.process_time() - t0
    if publisher is not None:
        publisher.stop()
        got = client.xlen("rewind:{bench}:http")
    else:
        got = sink.n
    if got != requests:
        raise SystemExit(f"{mode}: {got} records for {requests} requests")
    return cpu / requests * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20000, help="requests per run (default 20000)")
    p.add_argument("--conns", type=int, default=50, help="keep-alive connections (default 50)")
    p.add_argument("--runs", type=int, default=5, help="runs per set-up; the best counts")
    p.add_argument("--profile", choices=("track", "pack", "redis"),
                   help="print a cProfile of one run of this set-up instead")
    p.add_argument("--reference", action="store_true",
                   help="the Python reference tracker instead of the native one (before/after)")
    p.add_argument("--out", default="bench-results/sidecar.json", help="where the JSON goes")
    args = p.parse_args()
    events = traffic(args.requests, args.conns)
    gc.freeze()  # as rewind-capture does once it is set up (sidecar/capture/cli.py)
    from tests.support.redis_server import RedisServer
    server = RedisServer().start()
    try:
        if args.profile:
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.runcall(run, args.profile, events, args.requests, server.url, args.reference)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return
        rows = []
        print(f"{args.requests} requests on {args.conns} connections, {len(events)} events, "
              f"{'reference (Python)' if args.reference else 'native'} tracker")
        for mode in ("track", "pack", "redis"):
            us = min(run(mode, events, args.requests, server.url, args.reference)
                     for _ in range(args.runs))
            rows.append({"setup": mode, "us_per_request": round(us, 2)})
            print(f"{us:7.1f} us/request  {mode}")
    finally:
        server.stop()
    write_result({"requests": args.requests, "conns": args.conns, "events": len(events),
                  "tracker": "reference" if args.reference else "native", "setups": rows}, args.out)


if __name__ == "__main__":
    main()
