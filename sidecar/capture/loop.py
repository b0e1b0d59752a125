"""The capture loop: probe -> decode -> connection tracking -> publisher, plus the once-a-second
housekeeping (new target processes, idle expiry, dead processes, kernel drop counters)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from sidecar.capture.clock import Clock
from sidecar.capture.metrics import CaptureMetrics
from sidecar.capture.native import NativeTracker
from sidecar.capture.probe import WAKEUP_MS, ProbeError
from sidecar.capture.procfs import ProcFS
from sidecar.capture.targets import TargetFinder
from sidecar.capture.tlslibs import TlsLibraries


@dataclass
class CaptureConfig:
    port: int
    node: str
    max_body: int = 1 << 20
    max_header_bytes: int = 64 << 10
    idle_timeout_s: float = 300.0
    housekeeping_s: float = 1.0
    max_conns: int = 65536
    ringbuf_pages: int = 16384
    tls: bool = False  # hook the targets' libssl (the probe must be built with tls=True)
    # After a poll that found the ring buffer nearly empty, sleep this long before the next one
    # so that records gather: the kernel wakes a caught-up reader for every record, and a
    # wake-up costs more CPU than the record. Behind (a big poll), the loop does not sleep.
    poll_gap_s: float = 0.002
    poll_busy: int = 1000  # records in one poll that count as behind
    # With no record for idle_after_s, the loop looks at the ring every idle_look_ms instead of
    # every WAKEUP_MS (sidecar/capture/probe.py): an idle sidecar wakes 10 times a second, not
    # 100, and the first records after a quiet spell reach Redis up to idle_look_ms later.
    idle_after_s: float = 1.0
    idle_look_ms: int = 100


class IdleLook:
    """How long the capture loop may wait for the ring buffer before looking on its own: the
    probe wakes it only once a CPU has WAKEUP_BYTES of records, so the look bounds a record's
    delay. Short while records flow, longer once none came for ``after_s``."""

    def __init__(self, busy_ms: int, idle_ms: int, after_s: float, now: float) -> None:
        self.busy_ms, self.idle_ms, self.after_s = busy_ms, max(idle_ms, busy_ms), after_s
        self._last_record = now

    def saw(self, records: int | None, now: float) -> None:
        """After a poll: how many records it delivered (None: the reader cannot say)."""
        if records is None or records > 0:
            self._last_record = now

    def timeout_ms(self, now: float) -> int:
        return self.idle_ms if now - self._last_record >= self.after_s else self.busy_ms


class Capture:
    """Wires the parts together. ``probe_factory(handler)`` returns an object with the
    ``sidecar.capture.probe.Probe`` interface; ``publisher`` has ``put(record)`` and, to take
    records in batches, ``put_many(records)``."""

    def __init__(
        self,
        config: CaptureConfig,
        *,
        finder: TargetFinder,
        publisher,
        metrics: CaptureMetrics,
        probe_factory,
        procfs: ProcFS | None = None,
        clock: Clock | None = None,
        log=None,
    ) -> None:
        self.cfg = config
        self._finder = finder
        self._m = metrics
        self._procfs = procfs or ProcFS()
        self._log = log or structlog.get_logger("rewind.capture")
        self.tracker = NativeTracker(  # raises NativeUnavailable where the extension is not built
            emit=publisher.put,
            emit_many=getattr(publisher, "put_many", None),  # records come out in batches
            metrics=metrics,
            node=config.node,
            max_body=config.max_body,
            max_header_bytes=config.max_header_bytes,
            idle_timeout_s=config.idle_timeout_s,
            clock=clock,
            read_sendfile=self._read_sendfile,
            find_peer=self._procfs.find_peer,
            tls=config.tls,
            log=self._log,
        )
        self.probe = probe_factory(self.tracker)  # the ring buffer's records go straight in
        self.tls_libs = TlsLibraries(
            lambda path, pid: self.probe.attach_tls(path, pid),
            lambda pid: self.probe.detach_tls(pid),
            registry=metrics.registry, proc=self._procfs.root, log=self._log,
        ) if config.tls else None
        self._known_tgids: set[int] = set()
        self._other_pidns: set[int] = set()  # listeners the probe cannot see (targets.py)
        self._gone_tgids: set[int] = set()  # targets gone since the last TLS map clean-up
        self._kernel_drops: dict[str, int] = {}

    def start(self) -> None:
        """Load the probe and seed what is already there (listeners and open connections)."""
        problem = self._procfs.foreign_view()
        if problem:  # the probe would name processes differently from /proc: nothing would match
            raise ProbeError(problem)
        self.probe.load()
        found = self._refresh_targets()
        self._log.info(
            "capture.ready",
            port=self.cfg.port,
            processes=sorted(found),
            listeners=int(self._m.registry.get_sample_value("rewind_capture_listeners")),
            seeded=len(self.tracker),
            pid_namespace="host" if self._finder.pidns is None else "own",
            listeners_from=self._finder.listener_source,
            kernel_headers=" from ".join(getattr(self.probe, "headers", None) or ("?", "?")),
            probe_load_s=getattr(self.probe, "load_s", None),
        )
        if not found:
            self._log.warning("capture.no_listener", port=self.cfg.port,
                              hint="nothing listens on the port yet; rescanning every second")

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Poll until ``stop`` is set or ``duration_s`` has passed."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_tick = time.monotonic() + self.cfg.housekeeping_s
        gap, busy = self.cfg.poll_gap_s, self.cfg.poll_busy
        now = time.monotonic()
        look = IdleLook(WAKEUP_MS, self.cfg.idle_look_ms, self.cfg.idle_after_s, now)
        while not stop.is_set():
            n = self.probe.poll(100, look_ms=look.timeout_ms(now))  # one clock read per turn
            if gap and n is not None and n < busy:
                time.sleep(gap)
            now = time.monotonic()
            look.saw(n, now)
            if deadline is not None and now >= deadline:
                break
            if now >= next_tick:
                self.housekeeping()
                next_tick = now + self.cfg.housekeeping_s

    def finish(self) -> None:
        """Deliver what the ring buffer still holds and finish every open connection."""
        self.probe.poll(0)
        self.housekeeping()
        self.tracker.flush()
        self.tracker.flush_metrics()

    def _read_sendfile(self, ev):
        """A sendfile body read back, placed with the probe's count of file-position sends."""
        return self._procfs.read_sendfile(ev, getattr(self.probe, "sendfile_moved", None))

    def close(self) -> None:
        self.probe.close()

    # -- housekeeping ------------------------------------------------------------------
    def housekeeping(self) -> None:
        self.tracker.flush_metrics()
        self.tracker.clock.sync()
        self._refresh_targets()
        self.tracker.expire()
        for tgid, fd in self.tracker.forget_processes(self._procfs.alive):
            self.probe.forget_conn(tgid, fd)
        if self._gone_tgids:  # only then is there TLS map state to clean
            self.probe.forget_processes(self._procfs.alive)
            self._gone_tgids = set()
        for tgid, fd in self.probe.conn_keys():
            if tgid not in self._known_tgids and not self._procfs.alive(tgid):
                self.probe.forget_conn(tgid, fd)
        for reason, total in self.probe.drop_counts().items():
            delta = total - self._kernel_drops.get(reason, 0)
            if delta > 0:
                self._m.dropped_events.labels(reason).inc(delta)
                self._log.warning("capture.kernel_drops", reason=reason, events=delta)
            self._kernel_drops[reason] = total

    def _refresh_targets(self) -> set[int]:
        found = self._finder.scan()
        if found.other_pidns - self._other_pidns:
            self._log.warning(
                "capture.other_pid_namespace", port=self.cfg.port,
                pids=sorted(found.other_pidns - self._other_pidns),
                hint="these processes listen on the port in another PID namespace than the "
                "sidecar's and are not captured: run the sidecar in their pod "
                "(shareProcessNamespace) or in the host's PID namespace (hostPID)")
        self._other_pidns = found.other_pidns
        self.probe.set_listeners(found.listeners)
        self._m.listeners.set(len(found.listeners))
        tgids = found.tgids
        new = tgids - self._known_tgids
        now = self.tracker.clock.mono()
        seeded: dict[int, set[int]] = {}
        for (tgid, fd), client in found.conns.items():
            if tgid in new and self.probe.seed_conn(tgid, fd, now):
                self.tracker.seed(tgid, fd, client, now)
                seeded.setdefault(tgid, set()).add(fd)
        for tgid, fds in seeded.items():
            for r in self._procfs.blocked_reads(tgid, fds):
                self.probe.stash_read(tgid, r.tid, r.nr, r.fd, r.buf, r.iovcnt)
        listening: dict[int, set[int]] = {}
        for tgid, fd in found.listeners:
            if tgid in new:
                listening.setdefault(tgid, set()).add(fd)
        for tgid, fds in listening.items():  # workers asleep in accept() since before we came
            for tid, fd, addr in self._procfs.blocked_accepts(tgid, fds):
                self.probe.stash_accept(tgid, tid, fd, addr)
        if new and self._known_tgids:
            self._log.info("capture.new_processes", pids=sorted(new))
        if self.tls_libs is not None:
            self.tls_libs.update(tgids)
            self._gone_tgids |= self._known_tgids - tgids
        self._known_tgids = tgids
        return tgids
