"""One way to read a range of captured records, wherever they are: ``open_source``.

``--source`` names where records are: a Redis URL (with ``--stream NAME``), an archive folder,
or an exported file. A Redis URL and an archive folder together are read as one: the part of
the range still in Redis comes from Redis, the part trimmed from it comes from the archive,
joined on stream ids so that no entry comes twice and none is skipped (see ``JoinedReader``).

    source = open_source(["redis://redis:6379/0", "/archive"], stream="orders")
    for entry_id, record in source.read(Window(start_ns=..., end_ns=...)):
        ...

``read`` streams: memory holds a page of Redis entries, one read buffer per open segment, and
the records of the reorder window, never the range.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import redis

from sidecar.contract.manifest import MANIFEST, Manifest
from sidecar.contract.record import Record
from sidecar.contract.stream_ids import StreamId, format_id, next_id, parse_id, prev_id
from sidecar.contract.streams import KEY_PREFIX, KEY_SUFFIX, stream_key
from sidecar.common.redis_client import connect, redact_url

from replayer.source.archive_reader import ArchiveReader
from replayer.source.file_reader import FileReader
from replayer.source.ordering import DEFAULT_REORDER_NS, ReadStats, capture_order
from replayer.source.redis_reader import RedisReader, decode_fields
from replayer.source.window import DEFAULT_MARGIN_NS, Span, Window

__all__ = ["JoinedReader", "Source", "SourceError", "archives_in", "open_source", "redis_streams"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class SourceError(ValueError):
    """A --source that cannot be used; the message says what to change."""


class JoinedReader:
    """Redis and an archive as one stream: ids below Redis's oldest entry come from the archive.

    Each Redis page is read atomically with the stream's oldest id; when trimming has moved it
    past the reader's cursor (the archiver trims with --trim-archived only what is listed in
    the manifest), the trimmed part is read from the archive (manifest read again) first.
    """

    def __init__(self, redis_reader: RedisReader, archive: ArchiveReader) -> None:
        self.redis = redis_reader
        self.archive = archive

    def entries(self, lo: StreamId, hi: StreamId, ts_lo=None, ts_hi=None) -> Iterator[tuple]:
        boundary = self.redis.boundary()
        if boundary is None:
            yield from self.archive.entries(lo, hi, ts_lo, ts_hi)
            return
        if lo < boundary:
            yield from self.archive.entries(lo, min(hi, prev_id(boundary)), ts_lo, ts_hi)
        cursor = max(lo, boundary)
        while cursor <= hi:
            rows, now = self.redis.page_at(cursor, hi)
            if now is None or now > cursor:  # trimmed (or deleted) under us: the archive has it
                upto = hi if now is None else min(hi, prev_id(now))
                yield from self.archive.entries(cursor, upto, ts_lo, ts_hi)
            yield from self.redis.items(rows)
            if len(rows) < self.redis.page:
                return
            cursor = next_id(parse_id(rows[-1][0]))

    def span(self) -> list[Span]:
        return [self.redis.span(), self.archive.span()]


class Source:
    """Records from one place (or Redis + archive joined). See ``read`` and ``span``."""

    def __init__(self, backend, kind: str, *, margin_ns: int = DEFAULT_MARGIN_NS,
                 reorder_ns: int = DEFAULT_REORDER_NS, stream: str | None = None) -> None:
        self.backend = backend
        self.kind = kind  # "redis" | "archive" | "redis+archive" | "file"
        self.stream = stream
        self.margin_ns = margin_ns
        self.reorder_ns = reorder_ns

    def read(self, window: Window | None = None, *, order: str = "capture",
             stats: ReadStats | None = None) -> Iterator[tuple[str, Record]]:
        """(stream id, Record) for every record in ``window``, streamed.

        ``order="capture"``: by capture time (``ts_ns``), see ``ordering``; ``"stream"``: by
        stream id. An exported file is always read in its own order. An empty window or one in
        the future yields nothing (not an error).
        """
        if order not in ("capture", "stream"):
            raise ValueError(f"order must be 'capture' or 'stream', got {order!r}")
        window = window or Window()
        stats = stats if stats is not None else ReadStats()
        if self.kind == "file":  # a file's ids need not follow its times: filter by time only
            lo, hi = Window(start_id=window.start_id, end_id=window.end_id).id_bounds()
        else:
            lo, hi = window.id_bounds(self.margin_ns)
        if lo > hi:
            return
        items = self._matching(self.backend.entries(lo, hi, window.start_ns, window.end_ns),
                               window, stats)
        if order == "capture" and self.kind != "file":
            items = capture_order(items, self.reorder_ns, stats)
        for sid, _ts, raw, decode in items:
            stats.matched += 1
            if self.kind == "file":
                stats.from_file += 1
            elif decode is decode_fields:
                stats.from_redis += 1
            else:
                stats.from_archive += 1
            yield format_id(sid), decode(raw)

    @staticmethod
    def _matching(items: Iterator[tuple], window: Window, stats: ReadStats) -> Iterator[tuple]:
        for item in items:
            stats.scanned += 1
            if window.contains(item[0], item[1]):
                yield item

    def span(self) -> list[Span]:
        """What each place behind this source holds (one Span each)."""
        spans = self.backend.span()
        return spans if isinstance(spans, list) else [spans]


def open_source(specs: str | list[str], stream: str | None = None, *,
                client: redis.Redis | None = None, margin_ns: int = DEFAULT_MARGIN_NS,
                reorder_ns: int = DEFAULT_REORDER_NS) -> Source:
    """A Source for ``--source`` values: at most one Redis URL (needs ``stream``) and one
    archive folder, or one exported file. ``client`` replaces the connection to the URL."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise SourceError("no --source given: a Redis URL (with --stream), an archive folder, "
                          "or an exported file")
    urls = [s for s in specs if s.startswith(REDIS_SCHEMES)]
    paths = [Path(s) for s in specs if not s.startswith(REDIS_SCHEMES)]
    if len(urls) > 1:
        raise SourceError(f"more than one Redis URL in --source: {', '.join(urls)}")
    files = [p for p in paths if p.is_file()]
    folders = [p for p in paths if p.is_dir()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SourceError(f"--source {missing[0]}: no such file or folder")
    if files and (len(specs) > 1):
        raise SourceError(f"an exported file ({files[0]}) is read on its own: give it as the "
                          "only --source")
    if files:
        return Source(FileReader(files[0]), "file", margin_ns=margin_ns, reorder_ns=reorder_ns)
    if len(folders) > 1:
        raise SourceError(f"more than one archive folder in --source: {', '.join(map(str, folders))}")
    archive = None
    if folders:
        root = resolve_archive(folders[0], stream)
        archive = ArchiveReader(root)
        stream = stream or Manifest(root).load().stream or root.name
    reader = None
    if urls:
        if not stream:
            raise SourceError("--stream NAME is needed with a Redis URL (records are in "
                              "rewind:{NAME}:http); `rewind-inspect list --source URL` shows them")
        try:
            stream_key(stream)
            client = client or connect(urls[0])
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        reader = RedisReader(client, stream, where=redact_url(urls[0]))
    kw = {"margin_ns": margin_ns, "reorder_ns": reorder_ns, "stream": stream}
    if reader and archive:
        return Source(JoinedReader(reader, archive), "redis+archive", **kw)
    if reader:
        return Source(reader, "redis", **kw)
    return Source(archive, "archive", **kw)


def resolve_archive(folder: Path, stream: str | None) -> Path:
    """An archive folder (holds manifest.json), or the archive of ``stream`` inside ``folder``."""
    if (folder / MANIFEST).exists():
        return folder
    found = archives_in(folder)
    if stream:
        if (folder / stream / MANIFEST).exists() or (folder / stream / "consumers").is_dir():
            return folder / stream
        raise SourceError(f"no archive of stream {stream!r} in {folder}"
                          + (f" (archives here: {', '.join(p.name for p in found)})" if found else ""))
    if len(found) == 1:
        return found[0]
    if found:
        raise SourceError(f"{folder} holds archives of several streams "
                          f"({', '.join(p.name for p in found)}): pick one with --stream NAME")
    raise SourceError(f"{folder} is not an archive folder (no {MANIFEST} in it or its subfolders)")


def archives_in(folder: Path) -> list[Path]:
    """Archive folders directly in ``folder`` (itself, when it is one)."""
    if (folder / MANIFEST).exists():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / MANIFEST).exists())


def redis_streams(client: redis.Redis) -> list[str]:
    """Names of the capture streams in a Redis database (``rewind:{NAME}:http`` keys)."""
    names = set()
    for key in client.scan_iter(match=f"{KEY_PREFIX}:{{*}}:{KEY_SUFFIX}", count=1000,
                                _type="stream"):
        k = key.decode() if isinstance(key, bytes) else key
        names.add(k[len(KEY_PREFIX) + 2: -len(KEY_SUFFIX) - 2])
    return sorted(names)


