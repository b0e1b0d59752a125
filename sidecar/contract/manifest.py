"""The manifest of one archive folder: ``manifest.json``, the list of its segments.

Layout of an archive folder (one per stream, ``<--out>/<stream name>/``)::

    manifest.json              {"format": "rewind-archive", "version": 1, "stream": ...,
                                "segments": [SegmentInfo, ...]}  sorted by first_id
    manifest.lock              flock(2) taken around every read-modify-write of the manifest
    2024-05-14/<first id>.<consumer>.jsonl.zst    segments, by UTC day of their earliest record
    consumers/<consumer>.lock  held (flock) by a running archiver: how siblings tell it is alive
    tmp/<consumer>.open        the segment a consumer is writing; nothing in it is acked yet
    quarantine/                segments found corrupt at start-up, set aside, never read

Updates are atomic: the new manifest is written to ``manifest.json.tmp``, fsynced, renamed over
``manifest.json``, and the folder is fsynced. Readers never lock: a rename is all-or-nothing.
The manifest is derivable from the segments (each file describes itself, see
``segments.verify``), so a crash between installing a segment and listing it loses nothing:
start-up lists it (see ``sidecar.archive.recovery``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from sidecar.contract.segments import SegmentInfo, fsync_dir
from sidecar.contract.stream_ids import StreamId, parse_id

__all__ = ["FORMAT", "MANIFEST", "Manifest", "ManifestError", "ManifestState"]

FORMAT = "rewind-archive"
VERSION = 1
MANIFEST = "manifest.json"


class ManifestError(Exception):
    """A manifest that cannot be read (not JSON, another format or version)."""


@dataclass
class ManifestState:
    stream: str
    segments: list[SegmentInfo] = field(default_factory=list)

    def sort(self) -> None:
        self.segments.sort(key=lambda s: (parse_id(s.first_id), s.file))

    def overlapping(self, lo: StreamId, hi: StreamId) -> list[SegmentInfo]:
        """Segments whose id range meets [lo, hi], by first id."""
        return [s for s in self.segments
                if parse_id(s.first_id) <= hi and parse_id(s.last_id) >= lo]

    def files(self) -> set[str]:
        return {s.file for s in self.segments}


class Manifest:
    """``manifest.json`` in ``root``. ``load()`` for readers; ``update()`` for writers."""

    def __init__(self, root: Path, stream: str = "") -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST
        self.stream = stream

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> ManifestState:
        """The current manifest (an empty one when there is none yet)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ManifestState(self.stream)
        try:
            doc = orjson.loads(raw)
            if doc.get("format") != FORMAT:
                raise ManifestError(f"{self.path}: not a rewind archive manifest")
            if doc.get("version") != VERSION:
                raise ManifestError(f"{self.path}: manifest version {doc.get('version')} is not "
                                    f"supported (this is {VERSION})")
            state = ManifestState(doc.get("stream", self.stream),
                                  [SegmentInfo.from_dict(s) for s in doc["segments"]])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ManifestError(f"{self.path}: unreadable manifest: {exc!r}") from exc
        state.sort()
        return state

    @contextlib.contextmanager
    def update(self) -> Iterator[ManifestState]:
        """Lock, load, let the caller change the state, then save it atomically (unless the
        block raised). Other archivers of the same folder wait on the lock meanwhile."""
        with self.lock():
            state = self.load()
            yield state
            self.save(state)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def save(self, state: ManifestState) -> None:
        state.sort()
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "stream": state.stream or self.stream,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "segments": [s.to_dict() for s in state.segments],
        }
        tmp = self.path.with_name(MANIFEST + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, self.path)
        fsync_dir(self.root)
