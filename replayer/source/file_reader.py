"""Reading an exported range: one JSON Lines file (``.jsonl``) or a zstd-compressed one
(``.jsonl.zst``, recognised by its magic bytes), one record a line with its stream ``id``, as
``rewind-inspect export`` writes it. Lines come back in file order (the order they were
exported in, capture order by default). Lines without an ``id`` (plain ``Record.to_json``
output, like ``make demo``'s records.jsonl) are read too, numbered ``0-<line number>``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from sidecar.contract.archive_lines import line_record
from sidecar.contract.record import SCHEMA_VERSION, RecordError
from sidecar.contract.segments import iter_lines
from sidecar.contract.stream_ids import StreamId, parse_id

from replayer.source.window import Span

__all__ = ["FileReader", "is_zstd"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def is_zstd(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == ZSTD_MAGIC


class _Counting:
    """A file object that counts the bytes read from it (for progress)."""

    def __init__(self, fh, reader: FileReader) -> None:
        self.fh, self.reader = fh, reader

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.reader.read_bytes += len(data)
        return data


class FileReader:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.read_bytes = 0  # of the file (compressed or not), by the current read
        self.size = 0

    def fraction(self) -> float | None:
        """How much of the file the current read has gone through (0-1)."""
        return self.read_bytes / self.size if self.size else None

    def lines(self) -> Iterator[bytes]:
        self.read_bytes, self.size = 0, self.path.stat().st_size
        if is_zstd(self.path):
            with open(self.path, "rb") as fh:
                yield from iter_lines(self.path, _Counting(fh, self))
            return
        with open(self.path, "rb") as fh:
            for line in fh:
                self.read_bytes += len(line)
                yield line

    def entries(self, lo: StreamId, hi: StreamId, ts_lo: int | None = None,
                ts_hi: int | None = None) -> Iterator[tuple]:
        """Lines with lo <= id <= hi, in file order, as (id, ts_ns, doc, decode); the time
        range is left to the caller."""
        for n, line in enumerate(self.lines(), 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
                sid = parse_id(doc["id"]) if "id" in doc else (0, n)  # a plain Record.to_json line
                ts = int(doc["ts_ns"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise RecordError(f"{self.path}:{n}: not an exported record line: {exc!r}") from exc
            if doc.get("v") != SCHEMA_VERSION:
                raise RecordError(f"{self.path}:{n}: record schema v{doc.get('v')} is not "
                                  f"supported (this is v{SCHEMA_VERSION})")
            if lo <= sid <= hi:
                yield sid, ts, doc, line_record

    def span(self) -> Span:
        count, ids, ts = 0, [], []
        for sid, t, _doc, _dec in self.entries((0, 0), (1 << 64, 0)):
            count += 1
            if not ids:
                ids, ts = [sid, sid], [t, t]
            ids = [min(ids[0], sid), max(ids[1], sid)]
            ts = [min(ts[0], t), max(ts[1], t)]
        if not count:
            return Span("file", str(self.path), 0)
        return Span("file", str(self.path), count, first_id=f"{ids[0][0]}-{ids[0][1]}",
                    last_id=f"{ids[1][0]}-{ids[1][1]}", first_ts_ns=ts[0], last_ts_ns=ts[1],
                    detail=f"{self.path.stat().st_size:,} bytes")
