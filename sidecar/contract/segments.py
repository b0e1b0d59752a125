"""Archive segments: one zstd frame of JSON Lines (see ``archive_lines``), in stream-id order.

* ``SegmentWriter`` streams lines into a temporary file, hashing the compressed bytes (SHA-256)
  as they are written; ``finish()`` ends the frame and fsyncs. Ids must increase strictly within
  a segment (the caller starts a new segment otherwise), so readers can merge segments by id.
* ``install`` moves a finished file to its final name and fsyncs both folders.
* ``iter_lines`` streams a segment back and raises ``SegmentError`` on a truncated or corrupt
  frame (zstd's own content checksum covers the data); ``verify`` recomputes a segment's
  ``SegmentInfo`` and compares it with the manifest's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import zstandard

from sidecar.contract.stream_ids import StreamId, format_id, parse_id

__all__ = ["SUFFIX", "SegmentError", "SegmentInfo", "SegmentWriter", "fsync_dir", "install",
           "iter_lines", "verify"]

SUFFIX = ".jsonl.zst"
READ_CHUNK = 1 << 20
BUFFER_BYTES = 1 << 20  # lines are handed to the compressor in ~1 MiB pieces


class SegmentError(Exception):
    """A segment file that cannot be read back whole (truncated, corrupt, not what was listed)."""


@dataclass(slots=True)
class SegmentInfo:
    """What the manifest says about one segment. Times are capture times (``ts_ns``), the
    earliest and latest in the segment; ids are the first and last line's (the lowest, highest)."""

    file: str  # path relative to the archive folder
    first_id: str
    last_id: str
    first_ts_ns: int
    last_ts_ns: int
    count: int
    bytes: int  # compressed size on disk
    raw_bytes: int  # JSON Lines size before compression
    sha256: str
    consumer: str = ""
    closed_at_ns: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SegmentInfo:
        return cls(**d)

    @property
    def id_range(self) -> tuple[StreamId, StreamId]:
        return parse_id(self.first_id), parse_id(self.last_id)


class SegmentWriter:
    """Writes one segment to ``path`` (a temporary name; see ``install``)."""

    def __init__(self, path: Path, *, level: int = 3, threads: int = 0, clock=time.time) -> None:
        self.path = Path(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 -- closed by finish()/abort()
        self._hash = hashlib.sha256()
        self._size = 0
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
        self._zw = cctx.stream_writer(self, closefd=False)
        self._pending: list[bytes] = []  # lines not yet handed to zstd (one call per ~1 MiB)
        self._pending_bytes = 0
        self.count = 0
        self.raw_bytes = 0
        self.first_id: StreamId | None = None
        self.last_id: StreamId | None = None
        self.min_ts = self.max_ts = 0
        self.opened_at = clock()

    def write(self, data: bytes) -> int:  # the compressed side: called by the zstd writer
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def append(self, entry_id: StreamId, ts_ns: int, line: bytes) -> None:
        """Add one line (ending in a newline). ``entry_id`` must exceed the previous one."""
        if self.last_id is not None and entry_id <= self.last_id:
            raise ValueError(f"segment ids must increase: {format_id(entry_id)} after "
                             f"{format_id(self.last_id)}")
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= BUFFER_BYTES:
            self._drain()
        if self.first_id is None:
            self.first_id, self.min_ts, self.max_ts = entry_id, ts_ns, ts_ns
        self.min_ts = min(self.min_ts, ts_ns)
        self.max_ts = max(self.max_ts, ts_ns)
        self.last_id = entry_id
        self.count += 1
        self.raw_bytes += len(line)

    def _drain(self) -> None:
        self._zw.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0

    def finish(self, *, consumer: str = "", clock=time.time_ns) -> SegmentInfo:
        """End the frame, flush and fsync the file; it stays at ``path`` until ``install``."""
        if self.first_id is None or self.last_id is None:
            raise ValueError("an empty segment cannot be finished")
        self._drain()
        self._zw.flush(zstandard.FLUSH_FRAME)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return SegmentInfo(
            file="", first_id=format_id(self.first_id), last_id=format_id(self.last_id),
            first_ts_ns=self.min_ts, last_ts_ns=self.max_ts, count=self.count, bytes=self._size,
            raw_bytes=self.raw_bytes, sha256=self._hash.hexdigest(), consumer=consumer,
            closed_at_ns=clock(),
        )

    def abort(self) -> None:
        """Close and delete the temporary file, ignoring errors (the disk may be the problem)."""
        for step in (self._file.close, self.path.unlink):
            try:
                step()
            except OSError:
                pass


def install(tmp: Path, root: Path, info: SegmentInfo) -> SegmentInfo:
    """Move a finished segment into its day folder (UTC date of its earliest capture time) under
    ``root`` and fsync both folders. Returns ``info`` with ``file`` set (relative to ``root``)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(info.first_ts_ns // 1_000_000_000))
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{info.first_id}.{info.consumer or 'archiver'}"
    final = folder / f"{stem}{SUFFIX}"
    n = 1
    while final.exists():  # never replace a segment (a re-archived range gets its own file)
        final = folder / f"{stem}.{n}{SUFFIX}"
        n += 1
    os.rename(tmp, final)
    fsync_dir(folder)
    fsync_dir(Path(tmp).parent)
    info.file = str(final.relative_to(root))
    return info


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_lines(path: Path, fh=None) -> Iterator[bytes]:
    """The lines of a segment (or any single-frame .zst file), streamed; each ends in a newline.
    ``fh``: read from this file object (opened on ``path``) instead of opening ``path``.

    Raises SegmentError when the frame is corrupt, truncated, or followed by other bytes.
    """
    dobj = zstandard.ZstdDecompressor().decompressobj()
    rest = b""
    try:
        with open(path, "rb") if fh is None else contextlib.nullcontext(fh) as fh:
            while chunk := fh.read(READ_CHUNK):
                if dobj.eof:
                    raise SegmentError(f"{path}: bytes after the end of the zstd frame")
                data = dobj.decompress(chunk)
                if not data:
                    continue
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    yield line + b"\n"
    except zstandard.ZstdError as exc:
        raise SegmentError(f"{path}: corrupt: {exc}") from exc
    if not dobj.eof:
        raise SegmentError(f"{path}: truncated (the zstd frame does not end)")
    if dobj.unused_data:
        raise SegmentError(f"{path}: bytes after the end of the zstd frame")
    if rest:
        raise SegmentError(f"{path}: the last line has no newline")


def verify(path: Path, expected: SegmentInfo | None = None) -> SegmentInfo:
    """Read a segment whole and describe it; SegmentError if it is unreadable, its ids do not
    increase, or it differs from ``expected`` (checksum, count, ids)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    sha = digest.hexdigest()
    if expected is not None and expected.sha256 != sha:
        raise SegmentError(f"{path}: checksum mismatch (manifest {expected.sha256[:12]}..., "
                           f"file {sha[:12]}..., {size} of {expected.bytes} bytes)")
    count = raw = 0
    first = last = None
    min_ts = max_ts = 0
    for line in iter_lines(path):
        try:
            doc = orjson.loads(line)
            entry_id, ts = parse_id(doc["id"]), int(doc["ts_ns"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SegmentError(f"{path}: line {count + 1} is not an archive line: {exc!r}") from exc
        if last is not None and entry_id <= last:
            raise SegmentError(f"{path}: ids do not increase at line {count + 1}")
        if first is None:
            first, min_ts, max_ts = entry_id, ts, ts
        last, min_ts, max_ts = entry_id, min(min_ts, ts), max(max_ts, ts)
        count += 1
        raw += len(line)
    if first is None or last is None:
        raise SegmentError(f"{path}: empty segment")
    info = SegmentInfo(file=expected.file if expected else "", first_id=format_id(first),
                       last_id=format_id(last), first_ts_ns=min_ts, last_ts_ns=max_ts, count=count,
                       bytes=size, raw_bytes=raw, sha256=sha,
                       consumer=expected.consumer if expected else "",
                       closed_at_ns=expected.closed_at_ns if expected else 0)
    if expected is not None and (info.count, info.first_id, info.last_id) != (
            expected.count, expected.first_id, expected.last_id):
        raise SegmentError(f"{path}: holds {count} records {info.first_id}..{info.last_id}, the "
                           f"manifest says {expected.count} {expected.first_id}..{expected.last_id}")
    return info
