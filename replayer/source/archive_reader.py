"""Reading an archive folder by stream id: a lazy k-way merge of its segments.

Lines within a segment have increasing ids (the archiver guarantees it), and the segments of
several archivers interleave, so the archive in id order is a merge of the segments that cover
the range. Segments are opened only when the merge reaches their first id, and each is read
as a stream: memory stays at one read buffer per segment open at once (about one per archiver).
The manifest is read again on every ``entries`` call, so segments closed meanwhile are seen.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

import orjson

from sidecar.contract.manifest import Manifest
from sidecar.contract.record import Record, RecordError
from sidecar.contract.archive_lines import line_id, line_record, line_ts
from sidecar.contract.segments import SegmentError, SegmentInfo, iter_lines
from sidecar.contract.stream_ids import StreamId, parse_id

from replayer.source.window import Span

__all__ = ["ArchiveReader", "Item", "decode_line"]

# (stream id, capture time, raw, decode): raw is decoded to a Record only when it is wanted
Item = tuple[StreamId, int, object, object]


def decode_line(doc: dict) -> Record:
    return line_record(doc)


class ArchiveReader:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest = Manifest(self.root)

    def segments(self, lo: StreamId, hi: StreamId, ts_lo: int | None = None,
                 ts_hi: int | None = None) -> list[SegmentInfo]:
        """Listed segments meeting the id range and, when given, the capture-time range
        [ts_lo, ts_hi) (a segment with no record in it is skipped)."""
        out = []
        for seg in self.manifest.load().overlapping(lo, hi):
            if ts_lo is not None and seg.last_ts_ns < ts_lo:
                continue
            if ts_hi is not None and seg.first_ts_ns >= ts_hi:
                continue
            out.append(seg)
        return out

    def entries(self, lo: StreamId, hi: StreamId, ts_lo: int | None = None,
                ts_hi: int | None = None) -> Iterator[Item]:
        """Every archived line with lo <= id <= hi (and ts_lo <= ts_ns < ts_hi when given), in
        id order, a duplicate id once."""
        segs = self.segments(lo, hi, ts_lo, ts_hi)
        heap: list[tuple[StreamId, int, dict, Iterator]] = []
        nxt = 0  # next segment (by first id) not opened yet
        last: StreamId | None = None
        while heap or nxt < len(segs):
            # open every segment that starts at or before the smallest id in the heap
            while nxt < len(segs) and (not heap or parse_id(segs[nxt].first_id) <= heap[0][0]):
                it = self._lines(segs[nxt], lo, hi, ts_lo, ts_hi)
                self._push(heap, nxt, it)
                nxt += 1
            if not heap:
                continue
            sid, idx, doc, it = heapq.heappop(heap)
            self._push(heap, idx, it)
            if sid == last:
                continue
            last = sid
            yield sid, int(doc["ts_ns"]), doc, decode_line

    @staticmethod
    def _push(heap: list, idx: int, it: Iterator) -> None:
        for sid, doc in it:
            heapq.heappush(heap, (sid, idx, doc, it))
            return

    def _lines(self, seg: SegmentInfo, lo: StreamId, hi: StreamId, ts_lo: int | None,
               ts_hi: int | None) -> Iterator[tuple[StreamId, dict]]:
        """A segment's lines in [lo, hi] and, when given, in [ts_lo, ts_hi): lines outside are
        skipped without being parsed."""
        path = self.root / seg.file
        timed = ts_lo is not None or ts_hi is not None
        try:
            for line in iter_lines(path):
                sid = parse_id(line_id(line))
                if sid < lo:
                    continue
                if sid > hi:
                    return
                if timed:
                    ts = line_ts(line)
                    if (ts_lo is not None and ts < ts_lo) or (ts_hi is not None and ts >= ts_hi):
                        continue
                yield sid, orjson.loads(line)
        except FileNotFoundError:
            raise SegmentError(f"{path}: listed in the manifest but missing (deleted by "
                               "--keep-days while being read, or by hand)") from None
        except (orjson.JSONDecodeError, RecordError, ValueError) as exc:
            raise SegmentError(f"{path}: unreadable line: {exc}") from exc

    def span(self) -> Span:
        state = self.manifest.load()
        segs = state.segments
        if not segs:
            return Span("archive", str(self.root), 0, detail="no segments")
        return Span(
            "archive", str(self.root), sum(s.count for s in segs),
            first_id=min(segs, key=lambda s: parse_id(s.first_id)).first_id,
            last_id=max(segs, key=lambda s: parse_id(s.last_id)).last_id,
            first_ts_ns=min(s.first_ts_ns for s in segs), last_ts_ns=max(s.last_ts_ns for s in segs),
            detail=f"{len(segs)} segments, {sum(s.bytes for s in segs):,} bytes, "
                   f"{len({s.consumer for s in segs})} archiver(s)",
        )
