"""Reading an archive folder by id: the merge of interleaved segments, without Redis."""

from __future__ import annotations

import random

import pytest

from replayer.source.archive_reader import ArchiveReader
from replayer.source.reader import SourceError, open_source
from replayer.source.window import Window
from sidecar.contract.manifest import Manifest
from sidecar.contract.archive_lines import entry_line
from sidecar.contract.segments import SegmentError, SegmentWriter, install
from sidecar.contract.stream_ids import format_id
from tests.support.traffic import api_records
from tests.unit.test_segments import as_redis

T0 = 1_715_680_800_000  # ms


def build_archive(root, n=3000, consumers=3, per_segment=300, seed=2):
    """Ids T0+i ms split at random between consumers, each writing segments in id order, as
    several archivers of one stream do; returns {id: Record}."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    recs = list(api_records(n, seed=seed, start_ns=T0 * 1_000_000))
    owned: dict[int, list] = {c: [] for c in range(consumers)}
    for i, rec in enumerate(recs):
        owned[rng.randrange(consumers)].append(((T0 + i, 0), rec))
    segments = []
    for c, entries in owned.items():
        for k in range(0, len(entries), per_segment):
            w = SegmentWriter(root / f"c{c}.open")
            for sid, rec in entries[k:k + per_segment]:
                line, ts = entry_line(format_id(sid).encode(), as_redis(rec))
                w.append(sid, ts, line)
            segments.append(install(w.path, root, w.finish(consumer=f"c{c}")))
    with Manifest(root, "orders").update() as state:
        state.segments += segments
    return {format_id((T0 + i, 0)): rec for i, rec in enumerate(recs)}


def test_merge_of_interleaved_segments_is_in_id_order_without_gaps(tmp_path):
    """Segments of three archivers interleave by id; the reader yields every id once, in order,
    and an id range or a time range selects exactly its records."""
    want = build_archive(tmp_path)
    reader = ArchiveReader(tmp_path)
    got = [(sid, decode(raw)) for sid, _ts, raw, decode in reader.entries((0, 0), (2**64, 0))]
    assert [format_id(s) for s, _ in got] == sorted(want, key=lambda i: int(i.split("-")[0]))
    assert all(want[format_id(s)] == r for s, r in got)
    part = [format_id(s) for s, *_ in reader.entries((T0 + 100, 0), (T0 + 199, 0))]
    assert part == [format_id((T0 + i, 0)) for i in range(100, 200)]
    span = reader.span()
    assert span.count == 3000 and span.first_id == f"{T0}-0" and "3 archiver(s)" in span.detail


def test_duplicate_id_in_two_segments_comes_once(tmp_path):
    """If an id ever sits in two segments (by hand, or a bug), a reader still yields it once."""
    build_archive(tmp_path, n=200, consumers=1, per_segment=200)
    rec = next(api_records(1))
    w = SegmentWriter(tmp_path / "dup.open")
    line, ts = entry_line(f"{T0 + 5}-0".encode(), as_redis(rec))
    w.append((T0 + 5, 0), ts, line)
    with Manifest(tmp_path).update() as state:
        state.segments.append(install(w.path, tmp_path, w.finish(consumer="x")))
    ids = [s for s, *_ in ArchiveReader(tmp_path).entries((0, 0), (2**64, 0))]
    assert len(ids) == 200 == len(set(ids))


def test_source_over_an_archive_folder_reads_a_time_window(tmp_path):
    """open_source() on the folder that holds the stream's archive reads a capture-time window
    in capture order, and skips segments entirely outside it."""
    want = build_archive(tmp_path / "orders")
    times = sorted(r.ts_ns for r in want.values())
    start, end = times[1000], times[2000]
    source = open_source(str(tmp_path), "orders")
    got = [r.ts_ns for _id, r in source.read(Window(start_ns=start, end_ns=end))]
    assert got == times[1000:2000]
    with pytest.raises(SourceError, match="no archive of stream 'nope'"):
        open_source(str(tmp_path), "nope")


def test_a_damaged_segment_stops_the_read_with_its_name(tmp_path):
    """A listed segment that does not read back whole raises SegmentError naming the file,
    rather than returning a range with a silent hole."""
    build_archive(tmp_path, n=600, consumers=1, per_segment=300)
    seg = Manifest(tmp_path).load().segments[1]
    path = tmp_path / seg.file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SegmentError, match=seg.file.split("/")[-1]):
        list(ArchiveReader(tmp_path).entries((0, 0), (2**64, 0)))


def test_plain_record_json_lines_are_a_source_too(tmp_path):
    """A file of plain Record.to_json lines (no ids, as make demo writes) reads back in file
    order with ids numbered by line, and a time window filters it."""
    recs = list(api_records(50, seed=8))
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"".join(r.to_json() + b"\n" for r in recs))
    got = list(open_source(str(path)).read())
    assert [r for _, r in got] == recs and got[0][0] == "0-1"
    window = Window(start_ns=recs[10].ts_ns, end_ns=recs[20].ts_ns)
    assert [r for _, r in open_source(str(path)).read(window)] == recs[10:20]
