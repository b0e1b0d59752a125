"""The tracker rewind-capture runs: the native hot path behind ConnectionTracker's interface.

``sidecar.capture._native`` (C, built from sidecar/capture/native/ by the package's own build)
goes from the ring buffer's memory mapping through event decoding, per-connection reassembly
and HTTP/1.x framing (llhttp, the parser httptools wraps) to finished ``Record``s, which it hands
to ``emit`` in batches. It is a port of the Python reference (``conntrack.ConnectionTracker`` on
``httpstream.HttpConnectionParser``), which stays as the reference the tests hold it to
(tests/unit/test_native_differential.py): same records, same counters.

There is no slow path to fall back on: where the extension is not built, ``NativeTracker``
raises ``NativeUnavailable`` with what to do, and rewind-capture stops (docs/capture.md).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import structlog

from sidecar.capture.clock import Clock
from sidecar.capture.events import _HEADER, Event, decode, peer
from sidecar.capture.metrics import CaptureMetrics
from sidecar.contract.record import Record
from sidecar.contract.xadd import FIELDS

__all__ = ["NativeTracker", "NativeUnavailable", "load", "xadd_packer"]

HINT = ("rewind-capture runs its hot path in the C extension sidecar.capture._native, which "
        "cannot be imported here ({error}). Build it with the package: `pip install .` (or "
        "`make venv` in a checkout) on a machine with gcc and the Python headers (Debian: "
        "apt-get install gcc python3-dev); the images build it (ci/docker)")


class NativeUnavailable(RuntimeError):
    """The native extension is not built (or not importable); the message says how to build it."""


def load():
    """The extension module, or NativeUnavailable."""
    try:
        from sidecar.capture import _native
    except ImportError as exc:
        raise NativeUnavailable(HINT.format(error=exc)) from exc
    return _native


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


def xadd_packer(head: tuple[bytes, ...]):
    """What the publisher packs records with: ``pack(record)`` gives the bytes of
    ``sidecar.contract.xadd.XaddPacker(head).pack(record)`` (the reference, pinned to hiredis),
    about ten times faster (tests/unit/test_native_pack.py holds the two together)."""
    prefix = b"*%d\r\n" % (len(head) + 2 * len(FIELDS)) + b"".join(map(_bulk, head))
    return load().Packer(prefix=prefix, names=tuple(_bulk(f.encode()) for f in FIELDS),
                         fields=FIELDS, dumps=orjson.dumps, record=Record)


class NativeTracker:
    """Ring-buffer records in, ``emit(record)`` out, for every finished request (or
    ``emit_many(records)`` for a batch of them, when given).

    The interface of ``ConnectionTracker`` (``clock``, ``seed``, ``expire``,
    ``forget_processes``, ``flush``, ``flush_metrics``, ``len()``, ``on_event``), plus:

    * ``tracker(raw)``: one ring-buffer record (bytes-like), as bcc's callback reader gives it;
    * ``consume_ring(consumer, producer, data, mask, limit)``: read the ring buffer's mapping
      directly (``RingBuffer.consume`` hands its mapping to a handler that has this method).

    Counters are kept natively and added to ``metrics`` by ``flush_metrics()``: the capture
    loop calls it once a second, and every call here does when a count other than requests,
    bytes and events moved (a parse error, a truncated body...), so those show at once, as
    the reference's do. Log lines go to ``log`` as they happen.
    """

    def __init__(
        self,
        *,
        emit: Callable[[Record], None],
        emit_many: Callable[[list[Record]], object] | None = None,
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
        if max_body < 0:
            raise ValueError(f"max_body must be >= 0 bytes, got {max_body}")
        if max_header_bytes <= 0:
            raise ValueError(f"max_header_bytes must be > 0, got {max_header_bytes}")
        native = load()
        self.clock = clock or Clock()
        self._m = metrics
        self._log = log or structlog.get_logger("rewind.capture")
        self._emit = emit
        self._emit_many = emit_many  # the sink's put() for a batch, where it has one
        self._t = native.Tracker(
            node=str(node), max_body=max_body, max_header_bytes=max_header_bytes,
            idle_ns=int(idle_timeout_s * 1e9), tls=bool(tls), record=Record,
            prototype=Record(ts_ns=0, conn="", seq=0, client="", method="", target="", version=""),
            emit=self._emit_batch, read_sendfile=read_sendfile or (lambda ev: None),
            find_peer=find_peer or (lambda tgid, fd: ""), peer=peer, decode=decode,
            log=self._log,
        )
        self._names = native.COUNTER_NAMES  # (metric attribute, label or None) per count
        self._children: dict[int, object] = {}  # made on first use, as the reference does

    def __len__(self) -> int:
        return len(self._t)

    # -- records in --------------------------------------------------------------------
    def __call__(self, raw) -> None:
        """One ring-buffer record (bytes-like, valid during the call only)."""
        self._t.offset = self.clock.offset
        self._t.feed(raw)
        if self._t.rare:
            self.flush_metrics()

    def consume_ring(self, consumer, producer, data, mask: int, limit: int = 0) -> int:
        """Handle the committed records of a ring buffer's mapping (see ringbuf.RingBuffer)."""
        self._t.offset = self.clock.offset
        n = self._t.consume(consumer, producer, data, mask, limit)
        if self._t.rare:
            self.flush_metrics()
        return n

    def on_event(self, ev: Event) -> None:
        """A decoded event (tests and tools; the capture loop hands raw records)."""
        self(_HEADER.pack(*ev[:14]) + ev.data)

    # -- records out -------------------------------------------------------------------
    def _emit_batch(self, records: list[Record]) -> None:
        if self._emit_many is not None:
            try:
                self._emit_many(records)
            except Exception:  # a failing sink must not stop capture: count it, log it, go on
                self._m.parse_errors.labels("internal").inc()
                self._log.exception("capture.event_failed")
            return
        emit = self._emit
        for record in records:
            try:
                emit(record)
            except Exception:  # a failing sink must not stop capture: count it, log it, go on
                self._m.parse_errors.labels("internal").inc()
                self._log.exception("capture.event_failed")

    # -- connection life ---------------------------------------------------------------
    def seed(self, tgid: int, fd: int, client: str, start_mono_ns: int) -> None:
        """A connection that was open before capture started (parsed from its next bytes)."""
        self._t.offset = self.clock.offset
        self._t.seed(tgid, fd, client, start_mono_ns)
        self.flush_metrics()

    def expire(self, now_mono_ns: int | None = None) -> list[tuple[int, int]]:
        """Drop state of connections idle for longer than the idle timeout; returns their keys."""
        self._t.offset = self.clock.offset
        keys = self._t.expire(self.clock.mono() if now_mono_ns is None else now_mono_ns)
        if keys:
            self.flush_metrics()
        return keys

    def forget_processes(self, alive: Callable[[int], bool]) -> list[tuple[int, int]]:
        """Finish connections of processes that exited (their close() is never seen)."""
        self._t.offset = self.clock.offset
        keys = self._t.forget(alive, self.clock.mono())
        if keys:
            self.flush_metrics()
        return keys

    def flush(self) -> None:
        """Finish every connection (shutdown): pending requests are published unanswered."""
        self._t.offset = self.clock.offset
        self._t.flush(self.clock.mono())
        self.flush_metrics()

    def flush_metrics(self) -> None:
        """Add the counts gathered since the last call to the metrics."""
        for i, n in enumerate(self._t.take_counts()):
            if n:
                child = self._children.get(i)
                if child is None:
                    name, label = self._names[i]
                    child = getattr(self._m, name)
                    child = self._children[i] = child if label is None else child.labels(label)
                child.inc(n)
        self._m.connections.set(len(self._t))
