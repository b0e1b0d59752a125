"""Connection tracking: kernel events -> per-connection byte streams -> records.

The reference implementation: rewind-capture runs its native port (sidecar/capture/native.py),
and tests/unit/test_native_differential.py holds the two to the same records and counters.

A connection is (tgid, fd), from accept (or seeding) to close. Each direction's bytes carry their
stream offset, so a chunk the kernel could not deliver shows up as a gap, which the parser is
told about (``lost``) instead of being fed the wrong bytes. Idle connection state expires.

TLS: with ``tls=True`` the probe sends the plaintext of libssl calls (``Kind.TLS_DATA``, offsets
in the plaintext stream); the first such event switches the connection to it. Raw bytes that
start like a TLS record on a connection's first read (a handshake seen before the probe knew the
fd was TLS) are set aside, not parsed; without ``tls`` they are a parse error ("tls") whose log
line says to run with --tls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from sidecar.capture.clock import Clock
from sidecar.capture.events import Direction, Event, Kind, peer
from sidecar.capture.httpstream import Exchange, HttpConnectionParser
from sidecar.capture.metrics import CaptureMetrics
from sidecar.contract.record import Record

_DIR_NAME = ("request", "response")
_ACCEPT, _DATA, _CLOSE, _SENDFILE = int(Kind.ACCEPT), int(Kind.DATA), int(Kind.CLOSE), int(Kind.SENDFILE)
_TLS_DATA = int(Kind.TLS_DATA)
_INGRESS = int(Direction.INGRESS)

__all__ = ["Clock", "ConnKey", "ConnectionTracker"]


class ConnKey(NamedTuple):
    """A server-side connection: the process and its socket's fd (the probe's key too)."""

    tgid: int
    fd: int


@dataclass(slots=True)
class _Conn:
    id: str
    peer: str
    parser: HttpConnectionParser
    expected: list[int]  # next stream offset per direction
    last_ns: int  # monotonic time of the last event
    seq: int = 0
    # False for connections picked up mid-life (seeded at start, or resumed after expiry) until
    # their first request bytes: a response to a request we never saw is skipped, not an error
    synced: bool = True
    tls: bool = False  # parsing the plaintext of libssl calls
    tls_raw: bool = False  # its raw bytes are TLS records (ciphertext): set aside


class ConnectionTracker:
    """Consumes decoded events; calls ``emit(record)`` for each finished request."""

    def __init__(
        self,
        *,
        emit: Callable[[Record], None],
        metrics: CaptureMetrics,
        node: str,
        max_body: int,
        max_header_bytes: int = 65536,
        idle_timeout_s: float = 300.0,
        clock: Clock | None = None,
        read_sendfile: Callable[[Event], bytes | None] | None = None,
        find_peer: Callable[[int, int], str] | None = None,
        tls: bool = False,
        log=None,
    ) -> None:
        self._emit = emit
        self._m = metrics
        self._node = node
        self._max_body = max_body
        self._max_header = max_header_bytes
        self._idle_ns = int(idle_timeout_s * 1e9)
        self.clock = clock or Clock()
        self._read_sendfile = read_sendfile or (lambda ev: None)
        self._find_peer = find_peer or (lambda tgid, fd: "")
        self._tls = tls
        self._log = log or structlog.get_logger("rewind.capture")
        self._conns: dict[tuple[int, int], _Conn] = {}  # (tgid, fd): a plain tuple, built per event
        self._tls_warned: set[int] = set()  # processes already named in a TLS warning
        self._bytes = (metrics.bytes.labels("request"), metrics.bytes.labels("response"))
        # hot counters, added to the metrics by flush_metrics() (once a second, by the capture
        # loop): a prometheus-client call takes a lock, too dear per event
        self._nbytes = [0, 0]
        self._nrequests = 0

    def __len__(self) -> int:
        return len(self._conns)

    def flush_metrics(self) -> None:
        """Add the counts gathered since the last call to the metrics."""
        nbytes, self._nbytes = self._nbytes, [0, 0]
        for d in (0, 1):
            if nbytes[d]:
                self._bytes[d].inc(nbytes[d])
        if self._nrequests:
            self._m.requests.inc(self._nrequests)
            self._nrequests = 0

    # -- events ------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind == _DATA:
            self._on_data(ev, ev.data)
        elif kind == _TLS_DATA:
            conn = self._conns.get((ev.tgid, ev.fd)) or self._get(ev)
            if not conn.tls:
                self._to_tls(conn)
            self._on_data(ev, ev.data, conn)
        elif kind == _ACCEPT:
            key = (ev.tgid, ev.fd)
            if key in self._conns:  # its close was lost: finish the old one first
                self._finish(key, ev.ts_ns)
            client = peer(ev.family, ev.addr, ev.port) or self._find_peer(ev.tgid, ev.fd)
            self._open(key, client, ev.ts_ns, "accepted")
        elif kind == _CLOSE:
            conn = self._conns.get((ev.tgid, ev.fd))
            if conn is not None:
                if ev.aux and not conn.tls:  # TLS in the kernel: final offsets are plaintext ones
                    self._to_tls(conn)
                # bytes counted by the kernel but never delivered, at the end of a stream
                for d, final in ((0, ev.pos), (1, ev.total)):
                    if 0 <= conn.expected[d] < final and not conn.tls_raw:
                        self._lost(conn, d, final - conn.expected[d], ev.ts_ns)
                self._finish((ev.tgid, ev.fd), ev.ts_ns)
        elif kind == _SENDFILE:
            data = self._read_sendfile(ev)
            if data is None or len(data) != ev.total:
                conn = self._get(ev)
                if conn.expected[1] < 0:
                    conn.expected[1] = ev.pos
                self._lost(conn, 1, ev.pos + ev.total - conn.expected[1], ev.ts_ns)
                self._m.incomplete.labels("sendfile_unreadable").inc()
            else:
                self._on_data(ev, data)

    def _on_data(self, ev: Event, data: bytes, conn: _Conn | None = None) -> None:
        conn = conn or self._conns.get((ev.tgid, ev.fd)) or self._get(ev)
        d = ev.dir
        expected = conn.expected
        ts = ev.ts_ns
        # (_starts_tls only looks at a connection's first request bytes: not called otherwise)
        if ev.kind != _TLS_DATA and (conn.tls or conn.tls_raw or (
                d == _INGRESS and expected[0] <= 0 and self._starts_tls(conn, ev.tgid, d, data))):
            if not conn.tls:  # ciphertext: keep the offsets, parse nothing
                expected[d] = ev.pos + len(data)
            return
        if expected[d] < 0:  # first bytes of a resumed connection in this direction
            expected[d] = ev.pos
        gap = ev.pos - expected[d]
        if gap > 0:
            self._lost(conn, d, gap, ts)
        elif gap < 0:  # bytes before the expected offset: keep only the new part
            # Not with one writer per direction. Two threads writing one socket at once can have
            # their chunks reach the ring buffer out of order: the later call's chunk first (its
            # gap counted as lost above), then the earlier call's bytes, dropped here.
            data = data[-gap:]
        n = len(data)
        expected[d] += n
        conn.last_ns = ts
        if not n:
            return
        self._nbytes[d] += n
        if d == _INGRESS:
            conn.synced = True
            conn.parser.feed_request(data, ts)
        elif not conn.synced:
            self._m.incomplete.labels("mid_connection").inc()
        else:
            for ex in conn.parser.feed_response(data, ts):
                self._publish(conn, ex)

    def _starts_tls(self, conn: _Conn, tgid: int, d: int, data: bytes) -> bool:
        """The first bytes a server reads on a connection are a TLS record header (content type
        0x14..0x17, major version 3): no HTTP request starts so. Logged once per process."""
        if d != _INGRESS or conn.expected[0] > 0 or not data or not 0x14 <= data[0] <= 0x17 \
                or (len(data) > 1 and data[1] != 3):
            return False
        conn.tls_raw = True
        if not self._tls:
            self._m.parse_errors.labels("tls").inc()
            if self._warn_once(tgid):
                self._log.warning("capture.tls_connection", conn=conn.id, pid=tgid,
                                  hint="looks like TLS; run with --tls")
        return True

    def _warn_once(self, tgid: int) -> bool:
        """True the first time for a process (the count goes on; the log line is not repeated)."""
        if tgid in self._tls_warned:
            return False
        self._tls_warned.add(tgid)
        return True

    def _to_tls(self, conn: _Conn) -> None:
        """From now on the connection is parsed from the plaintext of its libssl calls."""
        conn.tls, conn.tls_raw = True, False
        conn.parser = self._parser()
        conn.expected = [0, 0] if conn.synced else [-1, -1]

    def _parser(self) -> HttpConnectionParser:
        return HttpConnectionParser(max_body=self._max_body, max_header_bytes=self._max_header,
                                    metrics=self._m, log=self._log)

    def _lost(self, conn: _Conn, d: int, nbytes: int, ts_ns: int) -> None:
        self._m.lost_bytes.inc(nbytes)
        self._log.warning("capture.lost_bytes", conn=conn.id, direction=_DIR_NAME[d], bytes=nbytes)
        conn.parser.lost(_DIR_NAME[d], nbytes, ts_ns)
        conn.expected[d] += nbytes

    # -- connection life ---------------------------------------------------------------
    def seed(self, tgid: int, fd: int, client: str, start_mono_ns: int) -> None:
        """A connection that was open before capture started (parsed from its next bytes)."""
        if (tgid, fd) not in self._conns:
            self._open((tgid, fd), client, start_mono_ns, "seeded").synced = False

    def _get(self, ev: Event) -> _Conn:
        conn = self._conns.get((ev.tgid, ev.fd))
        if conn is None:  # state expired (or seeded after its first bytes): start again
            conn = self._open((ev.tgid, ev.fd), self._find_peer(ev.tgid, ev.fd), ev.ts_ns, "resumed")
            conn.expected = [-1, -1]  # offsets unknown until each direction's next bytes
            conn.synced = False
        return conn

    def _open(self, key: tuple[int, int], client: str, mono_ns: int, how: str) -> _Conn:
        tgid, fd = key
        conn = _Conn(
            id=f"{self._node}:{tgid}:{fd}:{self.clock.to_wall(mono_ns)}",
            peer=client,
            parser=self._parser(),
            expected=[0, 0],
            last_ns=mono_ns,
        )
        self._conns[key] = conn
        self._m.connections_opened.labels(how).inc()
        self._m.connections.set(len(self._conns))
        return conn

    def _finish(self, key: tuple[int, int], ts_ns: int) -> None:
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        if conn.tls_raw and self._tls:
            self._m.parse_errors.labels("tls_undecrypted").inc()
            if self._warn_once(key[0]):
                self._log.warning("capture.tls_undecrypted", conn=conn.id, pid=key[0],
                                  hint="no plaintext came from libssl for this TLS connection: "
                                  "see capture.tls_unsupported and docs/capture.md, Limits")
        for ex in conn.parser.close(ts_ns):
            self._publish(conn, ex)
        self._m.connections.set(len(self._conns))

    def expire(self, now_mono_ns: int | None = None) -> list[ConnKey]:
        """Drop state of connections idle for longer than the idle timeout; returns their keys."""
        now = self.clock.mono() if now_mono_ns is None else now_mono_ns
        idle = [ConnKey._make(k) for k, c in self._conns.items() if now - c.last_ns > self._idle_ns]
        for key in idle:
            self._finish(key, now)
            self._m.connections_expired.inc()
        return idle

    def forget_processes(self, alive: Callable[[int], bool]) -> list[ConnKey]:
        """Finish connections of processes that exited (their close() is never seen)."""
        gone = [key for key in map(ConnKey._make, self._conns) if not alive(key.tgid)]
        for key in gone:
            self._finish(key, self.clock.mono())
        return gone

    def flush(self) -> None:
        """Finish every connection (shutdown): pending requests are published unanswered."""
        for key in list(self._conns):
            self._finish(key, self.clock.mono())

    # -- records -----------------------------------------------------------------------
    def _publish(self, conn: _Conn, ex: Exchange) -> None:
        rec = Record.from_exchange(
            ex, ts_ns=self.clock.to_wall(ex.req_start_ns), conn=conn.id, seq=conn.seq,
            client=conn.peer, tls=conn.tls,
            latency_us=max(0, ex.resp_end_ns - ex.req_end_ns) // 1000 if ex.status else 0)
        conn.seq += 1
        self._nrequests += 1
        self._emit(rec)
