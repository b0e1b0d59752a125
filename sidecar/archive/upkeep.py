"""The archiver's periodic work: claim from dead consumers, repair corrupt ranges, trim Redis,
delete old segments (``--keep-days``), refresh the lag, pending and stream-length gauges.

Each job runs from the archiver's loop (one thread), on its own interval; see ``archiver`` for
the invariants they keep.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sidecar.archive.recovery import ArchivedIndex
from sidecar.contract.segments import SegmentInfo
from sidecar.contract.stream_ids import MAX_ID, id_ms, next_id, parse_id

if TYPE_CHECKING:
    from sidecar.archive.archiver import Archiver

__all__ = ["Upkeep"]

METRICS_EVERY_S = 2.0
RETENTION_EVERY_S = 3600.0


class Upkeep:
    def __init__(self, archiver: Archiver, *, clock=time.time) -> None:
        self.a = archiver
        self._clock = clock
        self._next: dict[str, float] = {}

    def _due(self, job: str, every: float) -> bool:
        now = self.a.monotonic()
        if now < self._next.get(job, 0.0):
            return False
        self._next[job] = now + every
        return True

    def tick(self) -> None:
        cfg = self.a.cfg
        if self._due("claim", cfg.claim_interval_s) and self.claim_dead():
            self.a.drain_own()
        if cfg.keep_days is not None and self._due("retention", RETENTION_EVERY_S):
            self.retention()
        if self._due("metrics", METRICS_EVERY_S):
            self.refresh_metrics()

    def after_segment(self) -> None:
        if self.a.cfg.trim_archived:
            self.trim()

    # -- dead consumers --------------------------------------------------------------------
    def claim_dead(self) -> int:
        """Move the pending entries of dead consumers to this one; how many moved."""
        a = self.a
        with_lock = a.locks.known()
        moved = 0
        for c in a.group.consumers():
            if c.name == a.cfg.consumer:
                continue
            if c.name in with_lock:
                with a.locks.if_dead(c.name) as dead:
                    if not dead:
                        continue
                    n = a.group.claim_all_of(c.name) if c.pending else 0
                    a.group.delete_consumer(c.name)
                    reason = "its lock is free (the process is gone)"
            elif c.idle_ms >= a.cfg.claim_idle_s * 1000:
                n = a.group.claim_all_of(c.name) if c.pending else 0
                a.group.delete_consumer(c.name)
                reason = f"no lock file here and idle for {c.idle_ms // 1000} s"
            else:
                continue
            moved += n
            a.metrics.claimed.inc(n)
            a.log.warning("archive.consumer_taken_over", consumer=c.name, entries=n, reason=reason)
        return moved

    # -- corrupt segments ------------------------------------------------------------------
    def repair(self, segments: list[SegmentInfo]) -> None:
        """Archive again, from Redis, the entries of set-aside segments that are acked (so not
        coming back as pending) and not in any other segment."""
        a = self.a
        a.close_segment()
        state = a.group.state()  # before the manifest: see "order" below
        pending = {s.file: a.group.pending_ids(*s.id_range) for s in segments}
        # order: an entry acked after the pending snapshot was listed before its ack, so it is
        # in the manifest loaded now; one delivered after the snapshot is > last_delivered.
        index = ArchivedIndex(a.root, a.manifest.load(), log=a.log)
        first = a.group.first_id()
        for seg in segments:
            lo, hi = seg.id_range
            hi = min(hi, state.last_delivered)
            skip = pending[seg.file] | index.ids_in(lo, hi)
            cursor, repaired = lo, 0
            while cursor <= hi and (page := a.group.xrange(cursor, hi, a.cfg.batch)):
                todo = [(eid, f) for eid, f in page if eid.decode() not in skip]
                if todo:
                    a.write(todo)
                repaired += len(todo)
                cursor = next_id(parse_id(page[-1][0]))
            a.close_segment()
            a.metrics.repaired.inc(repaired)
            trimmed = first is None or first > lo
            lost = max(0, seg.count - repaired - len(pending[seg.file])) if trimmed else 0
            if lost:
                a.metrics.lost.labels("corrupt_segment_trimmed").inc(lost)
            (a.log.error if lost else a.log.warning)(
                "archive.segment_repaired", file=seg.file, records=seg.count, repaired=repaired,
                still_pending=len(pending[seg.file]), lost_estimate=lost,
                note="part of its range was already trimmed from Redis" if trimmed else "")

    # -- retention -------------------------------------------------------------------------
    def trim(self) -> None:
        a = self.a
        keep = a.cfg.trim_keep_s
        not_after = MAX_ID if keep <= 0 else (int((self._clock() - keep) * 1000), 0)
        n = a.group.trim_archived(not_after)
        if n:
            a.metrics.trimmed.inc(n)

    def retention(self) -> None:
        a = self.a
        cutoff = int((self._clock() - a.cfg.keep_days * 86400) * 1e9)
        try:
            with a.manifest.update() as state:
                old = [s for s in state.segments if s.last_ts_ns < cutoff]
                for s in old:
                    state.segments.remove(s)
            for s in old:
                path = a.root / s.file
                path.unlink(missing_ok=True)
                try:
                    path.parent.rmdir()  # only when the day folder is empty
                except OSError:
                    pass
        except OSError as exc:
            a.log.error("archive.retention_failed", error=str(exc))
            return
        if old:
            a.metrics.deleted_segments.inc(len(old))
            a.log.info("archive.segments_deleted", segments=len(old),
                       records=sum(s.count for s in old), keep_days=a.cfg.keep_days)

    # -- gauges ----------------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        a = self.a
        st = a.group.state()
        a.metrics.pending.set(st.pending)
        if st.lag is not None:
            a.metrics.lag_records.set(st.lag)
        head = a.group.head()
        oldest = st.min_pending
        if oldest is None and head is not None and head > st.last_delivered:
            nxt = a.group.xrange(next_id(st.last_delivered), MAX_ID, 1)
            oldest = parse_id(nxt[0][0]) if nxt else None
        lag_s = 0.0 if head is None or oldest is None else (id_ms(head) - id_ms(oldest)) / 1000
        a.metrics.lag_seconds.set(max(0.0, lag_s))
        a.metrics.stream_length.set(a.group.length())
        if a.cfg.stream_maxlen:
            a.metrics.stream_maxlen.set(a.cfg.stream_maxlen)
