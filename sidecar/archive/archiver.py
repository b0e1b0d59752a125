"""The archiver: one consumer of the group ``rewind-archiver``, writing segments, acking after fsync.

Invariants (what makes a ``kill -9`` at any instant safe, and several archivers share a stream):

1. **Ack after durable.** An entry is XACKed only after the segment holding it is finished
   (zstd frame ended, file fsynced), renamed into its day folder (folders fsynced) and listed
   in the manifest (written, fsynced, renamed). Until then it stays pending in Redis.
2. **Open segments are disposable.** ``tmp/<consumer>.open`` holds only un-acked entries, so
   they are archived again from the pending list. It is deleted when an archiver of the folder
   checks it (start-up, or after a write error) and finds its consumer dead or is that
   consumer; a consumer found dead by the periodic claim leaves its file until then.
3. **At most the newest segments hold un-acked entries** (a crash between rename and XACK).
   Re-delivered entries (this consumer's own pending list, ``XREADGROUP 0``, and entries claimed
   from dead consumers) are checked against the segments covering their ids
   (``ArchivedIndex``) and acked without being written when found: never archived twice.
   New entries (``XREADGROUP >``) were never delivered before, so never archived before.
4. **The manifest is derivable.** A segment installed but not listed (crash in between) is
   verified and listed at start-up; a listed segment that fails its checksum is set aside and
   its id range archived again from Redis (entries still in the stream, acked, and not in any
   other segment), see ``sidecar.archive.recovery``.
5. **Ids increase within a segment.** An entry whose id is not above the open segment's last id
   (a re-delivered or repaired one) closes the segment first, so readers merge segments by id.
6. **Trimming follows archiving.** ``--trim-archived`` trims below the oldest entry that is
   pending or not yet delivered: everything below is acked, hence archived.
7. **Dead, not slow.** Pending entries are claimed only from consumers known to be dead: their
   lock file is free (``sidecar.archive.lock``), or, without a lock file here, Redis has not
   heard from them for ``claim_idle_s``.

A failed write (disk full, read-only, I/O error) abandons the segment (nothing of it was acked),
is logged and counted, and is retried with back-off by archiving this consumer's pending list
again; after ``write_retry_for_s`` of failures ``run`` raises ``ArchiveWriteFailed``.
"""

from __future__ import annotations

import base64
import errno
import os
import threading
import time
from pathlib import Path

import orjson
import redis
import structlog
from redis.backoff import ExponentialBackoff

from sidecar.archive.config import ArchiverConfig
from sidecar.archive.group import ArchiveGroup, Entry
from sidecar.archive.lock import ConsumerLocks
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.recovery import ArchivedIndex, recover_folder
from sidecar.archive.upkeep import Upkeep
from sidecar.contract.manifest import Manifest
from sidecar.contract.record import RecordError
from sidecar.contract.archive_lines import entry_line
from sidecar.contract.segments import SegmentWriter, fsync_dir, install
from sidecar.contract.stream_ids import MIN_ID, parse_id
from sidecar.common.redis_client import RETRYABLE_ERRORS

__all__ = ["ArchiveWriteFailed", "Archiver", "ArchiverConfig", "SegmentWriteError"]

BACKOFF = ExponentialBackoff(cap=10.0, base=0.1)


class SegmentWriteError(Exception):
    """Writing, syncing, installing or listing a segment failed; ``kind`` names why."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.kind = {errno.ENOSPC: "no_space", errno.EDQUOT: "no_space", errno.EROFS: "read_only",
                     errno.EACCES: "permission", errno.EPERM: "permission",
                     errno.EIO: "io"}.get(exc.errno, "other")


class ArchiveWriteFailed(Exception):
    """Segment writes kept failing for longer than ``write_retry_for_s``."""


class Archiver:
    def __init__(self, client: redis.Redis, config: ArchiverConfig, *,
                 metrics: ArchiveMetrics | None = None, log=None, monotonic=time.monotonic) -> None:
        self.cfg = config
        self.root = Path(config.root)
        self.group = ArchiveGroup(client, config.stream, config.consumer)
        self.manifest = Manifest(self.root, config.stream)
        self.locks = ConsumerLocks(self.root)
        self.metrics = metrics or ArchiveMetrics()
        self.log = log or structlog.get_logger("rewind.archive")
        self.monotonic = monotonic
        self._writer: SegmentWriter | None = None
        self._seg_ids: list[bytes] = []
        self._unacked: list[bytes] = []  # in listed segments, XACK not yet confirmed
        self.upkeep = Upkeep(config, group=self.group, locks=self.locks, manifest=self.manifest,
                             metrics=self.metrics, log=self.log, segments=self,
                             monotonic=monotonic)
        self.archived = 0  # records this process archived

    # -- life cycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Create the folder and take this consumer's lock (ConsumerBusy if another process
        holds it; OSError if the folder cannot be written). ``run`` creates the group."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.locks.acquire(self.cfg.consumer, wait=self.cfg.lock_wait_s)

    def close(self) -> None:
        self.locks.release(self.cfg.consumer)

    def run(self, stop: threading.Event, *, drain: bool = False) -> None:
        """Archive until ``stop`` is set (or, with ``drain``, until nothing new arrives), then
        close the open segment. Raises ArchiveWriteFailed (see the module docstring)."""
        failures, write_failing_since, resync, down_since = 0, None, True, None
        while not stop.is_set():
            try:
                if resync:
                    self.resync()
                    resync = False
                self._flush_acks()
                if self.upkeep.tick():  # entries taken over from dead consumers: archive them
                    self.drain_own()
                entries = self.group.read_new(self.cfg.batch, self._block_ms(drain))
                if entries:
                    self.write(entries)
                if self._writer is not None and (
                        self.monotonic() - self._writer.opened_at >= self.cfg.segment_seconds):
                    self.close_segment()
                if drain and not entries:
                    self.close_segment()
                    break
            except RETRYABLE_ERRORS as exc:
                if down_since is None:
                    down_since = self.monotonic()
                    self.log.warning("archive.redis_unreachable", error=str(exc))
                self.metrics.redis_up.set(0)
                failures += 1
                stop.wait(BACKOFF.compute(failures))
                continue
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.log.warning("archive.group_missing", error=str(exc), action="recreating")
                resync = True
                continue
            except SegmentWriteError as exc:
                self._abort_segment()
                self.metrics.write_errors.labels(exc.kind).inc()
                now = self.monotonic()
                write_failing_since = write_failing_since if write_failing_since else now
                failing_for = now - write_failing_since
                self.log.error("archive.write_failed", kind=exc.kind, error=str(exc),
                               failing_for_s=round(failing_for, 1),
                               give_up_after_s=self.cfg.write_retry_for_s,
                               acked="nothing of the failed segment")
                if failing_for >= self.cfg.write_retry_for_s:
                    raise ArchiveWriteFailed(str(exc)) from exc
                failures += 1
                resync = True
                stop.wait(min(BACKOFF.compute(failures), self.cfg.write_retry_for_s - failing_for))
                continue
            if down_since is not None:
                self.log.info("archive.redis_back", down_s=round(self.monotonic() - down_since, 3))
                down_since = None
            self.metrics.redis_up.set(1)
            failures, write_failing_since = 0, None
        self._finish()

    def _finish(self) -> None:
        try:
            self.close_segment()
            self._flush_acks()
        except (SegmentWriteError, *RETRYABLE_ERRORS) as exc:
            self._abort_segment()
            self.log.error("archive.final_segment_failed", error=str(exc),
                           note="its entries stay pending and are archived at the next start")

    def resync(self) -> None:
        """Start-up (and after a write error): check the folder, take over dead consumers'
        work, re-archive corrupt segments' ranges, then this consumer's pending entries."""
        self.group.ensure()
        self._flush_acks()
        try:
            report = recover_folder(self.root, self.manifest, self.locks, self.cfg.consumer,
                                    verify_all=self.cfg.verify_all, log=self.log,
                                    metrics=self.metrics)
            self.upkeep.claim_dead()
        except OSError as exc:  # the folder cannot be written: retried like a segment write
            raise SegmentWriteError(exc) from exc
        if report.repair:
            self.upkeep.repair(report.repair)
        self.drain_own()

    # -- writing ---------------------------------------------------------------------------
    def drain_own(self) -> int:
        """Archive this consumer's pending entries, skipping those already archived."""
        self.close_segment()
        index = ArchivedIndex(self.root, self.manifest.load(), log=self.log)
        after, total = MIN_ID, 0
        while entries := self.group.read_own_pending(after, self.cfg.batch):
            self.write(entries, index=index)
            total += len(entries)
            after = parse_id(entries[-1].id)
        self.close_segment()
        if total:
            self.log.info("archive.pending_drained", entries=total)
        return total

    def write(self, entries: list[Entry], index: ArchivedIndex | None = None) -> None:
        archived: set[str] = set()
        if index is not None:
            archived = index.ids_in(parse_id(entries[0].id), parse_id(entries[-1].id))
        ack_now: list[bytes] = []
        for eid, fields in entries:
            if not fields:  # deleted from the stream (MAXLEN trimming) before it was archived
                self.metrics.lost.labels("deleted_before_archived").inc()
                self.log.error("archive.entry_lost", id=eid.decode(),
                               reason="deleted from the stream before it was archived")
                ack_now.append(eid)
                continue
            if archived and eid.decode() in archived:
                self.metrics.duplicates_skipped.inc()
                ack_now.append(eid)
                continue
            try:
                out = entry_line(eid, fields)
            except RecordError as exc:
                self._reject(eid, fields, exc)
                ack_now.append(eid)
                continue
            sid = parse_id(eid)
            w = self._writer
            if w is not None and w.last_id is not None and sid <= w.last_id:
                self.close_segment()
                w = None
            if w is None:
                w = self._open_segment()
            try:
                w.append(sid, out.ts_ns, out.line)
            except OSError as exc:
                raise SegmentWriteError(exc) from exc
            self._seg_ids.append(eid)
            if w.raw_bytes >= self.cfg.segment_bytes:
                self.close_segment()
        self.group.ack(ack_now)

    def _open_segment(self) -> SegmentWriter:
        try:
            self._writer = SegmentWriter(self.root / "tmp" / f"{self.cfg.consumer}.open",
                                         level=self.cfg.level, threads=self.cfg.threads,
                                         clock=self.monotonic)
        except OSError as exc:
            raise SegmentWriteError(exc) from exc
        return self._writer

    def close_segment(self) -> None:
        """Finish, fsync, install and list the open segment, then XACK its entries."""
        w, ids = self._writer, self._seg_ids
        if w is None:
            return
        try:
            info = w.finish(consumer=self.cfg.consumer)
            install(w.path, self.root, info)
            with self.manifest.update() as state:
                state.segments.append(info)
        except OSError as exc:
            raise SegmentWriteError(exc) from exc
        self._writer, self._seg_ids = None, []
        self.metrics.segment_written(info.count, info.raw_bytes, info.bytes)
        self.archived += info.count
        self.log.info("archive.segment_closed", file=info.file, records=info.count,
                      bytes=info.bytes, ratio=round(info.raw_bytes / max(1, info.bytes), 2),
                      first_id=info.first_id, last_id=info.last_id)
        self._unacked.extend(ids)
        self._flush_acks()
        self.upkeep.after_segment()

    def _abort_segment(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        self._writer, self._seg_ids = None, []

    def _flush_acks(self) -> None:
        if self._unacked:
            self.group.ack(self._unacked)
            self._unacked = []

    def _reject(self, eid: bytes, fields: dict[bytes, bytes], exc: Exception) -> None:
        """Keep an entry that is not a record in ``rejected.jsonl`` (fsynced), so it can be acked."""
        doc = {"id": eid.decode(), "error": str(exc),
               "fields_b64": {k.decode("latin-1"): base64.b64encode(v).decode()
                              for k, v in fields.items()}}
        try:
            with open(self.root / "rejected.jsonl", "ab") as fh:
                fh.write(orjson.dumps(doc) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(self.root)
        except OSError as err:
            raise SegmentWriteError(err) from err
        self.metrics.bad_entries.inc()
        self.log.warning("archive.bad_entry", id=eid.decode(), error=str(exc),
                         kept_in="rejected.jsonl")

    def _block_ms(self, drain: bool) -> int:
        block = min(self.cfg.block_ms, 200) if drain else self.cfg.block_ms
        if self._writer is not None:
            left = self.cfg.segment_seconds - (self.monotonic() - self._writer.opened_at)
            block = min(block, max(1, int(left * 1000)))
        return max(1, block)
