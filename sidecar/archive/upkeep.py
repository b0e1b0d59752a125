"""The archiver's periodic work: claim from dead consumers, repair corrupt ranges, trim Redis,
delete old segments (``--keep-days``), refresh the lag, pending and stream-length gauges.

Each job runs from the archiver's loop (one thread), on its own interval; see
``sidecar.archive.archiver`` for the invariants they keep. What upkeep touches is passed in: the
consumer group, the locks, the manifest, the metrics, and ``segments`` (a ``SegmentSink``: how
repaired entries are written, which the archiver provides); it never imports the archiver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sidecar.archive.config import ArchiverConfig
from sidecar.archive.group import ArchiveGroup, Entry
from sidecar.archive.lock import ConsumerLocks
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.recovery import ArchivedIndex
from sidecar.contract.manifest import Manifest
from sidecar.contract.segments import SegmentInfo
from sidecar.contract.stream_ids import MAX_ID, id_ms, next_id, parse_id

__all__ = ["SegmentSink", "Upkeep"]

METRICS_EVERY_S = 2.0
RETENTION_EVERY_S = 3600.0


class SegmentSink(Protocol):
    """Where repaired entries go: the archiver's segment writing."""

    def write(self, entries: list[Entry]) -> None:
        """Append entries to the open segment (opening one as needed)."""

    def close_segment(self) -> None:
        """Finish, fsync, install and list the open segment, then XACK its entries."""


class Upkeep:
    """The periodic jobs. ``monotonic`` times the intervals; ``clock`` (wall time, seconds) is
    what ``--trim-keep`` and ``--keep-days`` are measured against. ``config`` is read at each
    job, so a change to it applies from the next one."""

    def __init__(self, config: ArchiverConfig, *, group: ArchiveGroup, locks: ConsumerLocks,
                 manifest: Manifest, metrics: ArchiveMetrics, log, segments: SegmentSink,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = config
        self._root = Path(config.root)
        self._group = group
        self._locks = locks
        self._manifest = manifest
        self._metrics = metrics
        self._log = log
        self._segments = segments
        self._monotonic = monotonic
        self._clock = clock
        self._next: dict[str, float] = {}

    def _due(self, job: str, every: float) -> bool:
        now = self._monotonic()
        if now < self._next.get(job, 0.0):
            return False
        self._next[job] = now + every
        return True

    def tick(self) -> int:
        """Run the jobs that are due; how many pending entries were claimed from dead consumers
        (the caller archives them: they are now this consumer's pending entries)."""
        cfg = self.cfg
        claimed = self.claim_dead() if self._due("claim", cfg.claim_interval_s) else 0
        if cfg.keep_days is not None and self._due("retention", RETENTION_EVERY_S):
            self.retention()
        if self._due("metrics", METRICS_EVERY_S):
            self.refresh_metrics()
        return claimed

    def after_segment(self) -> None:
        if self.cfg.trim_archived:
            self.trim()

    # -- dead consumers --------------------------------------------------------------------
    def claim_dead(self) -> int:
        """Move the pending entries of dead consumers to this one; how many moved."""
        group, locks = self._group, self._locks
        with_lock = locks.known()
        moved = 0
        for c in group.consumers():
            if c.name == self.cfg.consumer:
                continue
            if c.name in with_lock:
                with locks.if_dead(c.name) as dead:
                    if not dead:
                        continue
                    n = group.claim_all_of(c.name) if c.pending else 0
                    group.delete_consumer(c.name)
                    reason = "its lock is free (the process is gone)"
            elif c.idle_ms >= self.cfg.claim_idle_s * 1000:
                n = group.claim_all_of(c.name) if c.pending else 0
                group.delete_consumer(c.name)
                reason = f"no lock file here and idle for {c.idle_ms // 1000} s"
            else:
                continue
            moved += n
            self._metrics.claimed.inc(n)
            self._log.warning("archive.consumer_taken_over", consumer=c.name, entries=n, reason=reason)
        return moved

    # -- corrupt segments ------------------------------------------------------------------
    def repair(self, segments: list[SegmentInfo]) -> None:
        """Archive again, from Redis, the entries of set-aside segments that are acked (so not
        coming back as pending) and not in any other segment."""
        group, sink, log = self._group, self._segments, self._log
        sink.close_segment()
        state = group.state()  # before the manifest: see "order" below
        pending = {s.file: group.pending_ids(*s.id_range) for s in segments}
        # order: an entry acked after the pending snapshot was listed before its ack, so it is
        # in the manifest loaded now; one delivered after the snapshot is > last_delivered.
        index = ArchivedIndex(self._root, self._manifest.load(), log=log)
        first = group.first_id()
        for seg in segments:
            lo, hi = seg.id_range
            hi = min(hi, state.last_delivered)
            skip = pending[seg.file] | index.ids_in(lo, hi)
            cursor, repaired = lo, 0
            while cursor <= hi and (page := group.xrange(cursor, hi, self.cfg.batch)):
                todo = [e for e in page if e.id.decode() not in skip]
                if todo:
                    sink.write(todo)
                repaired += len(todo)
                cursor = next_id(parse_id(page[-1].id))
            sink.close_segment()
            self._metrics.repaired.inc(repaired)
            trimmed = first is None or first > lo
            lost = max(0, seg.count - repaired - len(pending[seg.file])) if trimmed else 0
            if lost:
                self._metrics.lost.labels("corrupt_segment_trimmed").inc(lost)
            (log.error if lost else log.warning)(
                "archive.segment_repaired", file=seg.file, records=seg.count, repaired=repaired,
                still_pending=len(pending[seg.file]), lost_estimate=lost,
                note="part of its range was already trimmed from Redis" if trimmed else "")

    # -- retention -------------------------------------------------------------------------
    def trim(self) -> None:
        keep = self.cfg.trim_keep_s
        not_after = MAX_ID if keep <= 0 else (int((self._clock() - keep) * 1000), 0)
        n = self._group.trim_archived(not_after)
        if n:
            self._metrics.trimmed.inc(n)

    def retention(self) -> None:
        cutoff = int((self._clock() - self.cfg.keep_days * 86400) * 1e9)
        try:
            with self._manifest.update() as state:
                old = [s for s in state.segments if s.last_ts_ns < cutoff]
                for s in old:
                    state.segments.remove(s)
            for s in old:
                path = self._root / s.file
                path.unlink(missing_ok=True)
                try:
                    path.parent.rmdir()  # only when the day folder is empty
                except OSError:
                    pass
        except OSError as exc:
            self._log.error("archive.retention_failed", error=str(exc))
            return
        if old:
            self._metrics.deleted_segments.inc(len(old))
            self._log.info("archive.segments_deleted", segments=len(old),
                           records=sum(s.count for s in old), keep_days=self.cfg.keep_days)

    # -- gauges ----------------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        group, m = self._group, self._metrics
        st = group.state()
        m.pending.set(st.pending)
        if st.lag is not None:
            m.lag_records.set(st.lag)
        head = group.head()
        oldest = st.min_pending
        if oldest is None and head is not None and head > st.last_delivered:
            nxt = group.xrange(next_id(st.last_delivered), MAX_ID, 1)
            oldest = parse_id(nxt[0].id) if nxt else None
        lag_s = 0.0 if head is None or oldest is None else (id_ms(head) - id_ms(oldest)) / 1000
        m.lag_seconds.set(max(0.0, lag_s))
        m.stream_length.set(group.length())
        if self.cfg.stream_maxlen:
            m.stream_maxlen.set(self.cfg.stream_maxlen)
