"""Start-up checks of an archive folder, and the index of what is archived already.

``recover_folder`` runs under the manifest lock before an archiver reads anything:

0. a manifest that cannot be read is set aside and rebuilt from the segments;
1. a listed segment whose file is gone is dropped from the manifest (logged);
2. a segment file that is not listed (the archiver died between installing and listing it) is
   verified and listed, or set aside in ``quarantine/`` when it does not read back whole;
3. the newest segment of every consumer (or every segment, ``verify_all``) is verified against
   its checksum; a corrupt or truncated one (as after a power cut) is set aside, dropped from
   the manifest, and its id range returned so the archiver can archive it again from Redis;
4. the open segment (``tmp/<consumer>.open``) of this consumer and of dead ones is deleted:
   nothing in an open segment was acked, so Redis still holds all of it as pending.

``ArchivedIndex`` answers "which of these ids are archived already?" for re-delivered entries,
by reading the ids of the segments whose id range covers them (a few, cached).
"""

from __future__ import annotations

import collections
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.archive.lock import ConsumerLocks
from sidecar.contract.manifest import MANIFEST, Manifest, ManifestError, ManifestState
from sidecar.contract.archive_lines import line_id
from sidecar.contract.segments import SUFFIX, SegmentError, SegmentInfo, fsync_dir, iter_lines, verify
from sidecar.contract.stream_ids import StreamId

__all__ = ["ArchivedIndex", "RecoveryReport", "recover_folder"]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class RecoveryReport:
    added: list[str] = field(default_factory=list)  # unlisted segments now listed
    quarantined: list[str] = field(default_factory=list)
    repair: list[SegmentInfo] = field(default_factory=list)  # listed segments set aside
    missing: list[str] = field(default_factory=list)
    removed_open: list[str] = field(default_factory=list)


def recover_folder(root: Path, manifest: Manifest, locks: ConsumerLocks, me: str, *,
                   verify_all: bool = False, log, metrics=None) -> RecoveryReport:
    report = RecoveryReport()
    _set_aside_unreadable_manifest(manifest, log)
    with manifest.update() as state:
        _drop_missing(root, state, report, log)
        _list_unlisted(root, state, report, log, metrics)
        newest: dict[str, SegmentInfo] = {}
        for seg in state.segments:
            newest[seg.consumer] = seg  # segments are sorted by first id
        targets = list(state.segments) if verify_all else list(newest.values())
        for seg in targets:
            try:
                verify(root / seg.file, seg)
            except (SegmentError, OSError) as exc:
                log.error("archive.segment_corrupt", file=seg.file, error=str(exc),
                          first_id=seg.first_id, last_id=seg.last_id, count=seg.count)
                _quarantine(root, seg.file, report)
                state.segments.remove(seg)
                report.repair.append(seg)
                if metrics is not None:
                    metrics.corrupt_segments.inc()
    _remove_dead_open_segments(root, locks, me, report, log)
    return report


def _set_aside_unreadable_manifest(manifest: Manifest, log) -> None:
    """A manifest that cannot be read is renamed aside; it is rebuilt from the segments (every
    segment is then unlisted, verified and listed)."""
    with manifest.lock():
        try:
            manifest.load()
            return
        except ManifestError as exc:
            aside = manifest.path.with_name(
                f"{MANIFEST}.unreadable-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
            os.rename(manifest.path, aside)
            fsync_dir(manifest.root)
            log.error("archive.manifest_unreadable", error=str(exc), moved_to=aside.name,
                      action="rebuilding it from the segments")


def _drop_missing(root: Path, state: ManifestState, report: RecoveryReport, log) -> None:
    for seg in list(state.segments):
        if not (root / seg.file).exists():
            log.error("archive.segment_missing", file=seg.file, count=seg.count,
                      first_id=seg.first_id, last_id=seg.last_id)
            state.segments.remove(seg)
            report.missing.append(seg.file)


def _list_unlisted(root: Path, state: ManifestState, report: RecoveryReport, log, metrics) -> None:
    listed = state.files()
    for day in sorted(p for p in root.iterdir() if p.is_dir() and _DAY.match(p.name)):
        for path in sorted(day.glob(f"*{SUFFIX}")):
            rel = str(path.relative_to(root))
            if rel in listed:
                continue
            try:
                info = verify(path)
            except (SegmentError, OSError) as exc:
                log.error("archive.unlisted_segment_corrupt", file=rel, error=str(exc))
                _quarantine(root, rel, report)
                if metrics is not None:
                    metrics.corrupt_segments.inc()
                continue
            info.file = rel
            info.consumer = _consumer_of(path.name)
            state.segments.append(info)
            report.added.append(rel)
            log.info("archive.segment_listed", file=rel, count=info.count,
                     reason="installed but not listed before a crash")


def _consumer_of(filename: str) -> str:
    """``<first id>.<consumer>[.<n>].jsonl.zst`` -> consumer."""
    stem = filename[: -len(SUFFIX)]
    parts = stem.split(".")[1:]
    if len(parts) > 1 and parts[-1].isdigit():
        parts = parts[:-1]
    return ".".join(parts)


def _quarantine(root: Path, rel: str, report: RecoveryReport) -> None:
    qdir = root / "quarantine"
    qdir.mkdir(exist_ok=True)
    dest = qdir / f"{rel.replace('/', '_')}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    os.rename(root / rel, dest)
    fsync_dir(qdir)
    fsync_dir((root / rel).parent)
    report.quarantined.append(rel)


def _remove_dead_open_segments(root: Path, locks: ConsumerLocks, me: str,
                               report: RecoveryReport, log) -> None:
    tmp = root / "tmp"
    if not tmp.is_dir():
        return
    for path in tmp.glob("*.open"):
        name = path.name[: -len(".open")]
        if name != me:
            with locks.if_dead(name) as dead:
                if not dead:
                    continue
                path.unlink(missing_ok=True)
        else:
            path.unlink(missing_ok=True)
        report.removed_open.append(path.name)
        log.info("archive.open_segment_removed", file=path.name, consumer=name,
                 reason="never acked; its entries are still pending in Redis")


class ArchivedIndex:
    """Ids held by the listed segments, read on demand (the ``cache`` most recent files)."""

    def __init__(self, root: Path, state: ManifestState, *, cache: int = 16, log=None) -> None:
        self.root = Path(root)
        self.state = state
        self._cache: collections.OrderedDict[str, frozenset[str]] = collections.OrderedDict()
        self._size = cache
        self._log = log

    def ids_in(self, lo: StreamId, hi: StreamId) -> set[str]:
        out: set[str] = set()
        for seg in self.state.overlapping(lo, hi):
            out |= self._ids(seg)
        return out

    def _ids(self, seg: SegmentInfo) -> frozenset[str]:
        ids = self._cache.get(seg.file)
        if ids is not None:
            self._cache.move_to_end(seg.file)
            return ids
        try:
            ids = frozenset(line_id(line) for line in iter_lines(self.root / seg.file))
        except (SegmentError, OSError) as exc:
            if self._log is not None:
                self._log.error("archive.segment_unreadable", file=seg.file, error=str(exc))
            ids = frozenset()
        self._cache[seg.file] = ids
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return ids
