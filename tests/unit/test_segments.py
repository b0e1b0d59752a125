"""The archive line format, segments and the manifest on disk, without Redis: checksums and
damage detection."""

from __future__ import annotations

import subprocess

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.contract.manifest import Manifest, ManifestError
from sidecar.contract.record import SCHEMA_VERSION, Record, RecordError
from sidecar.contract.archive_lines import entry_line, line_id, line_ts, parse_line, record_line
from sidecar.contract.segments import SegmentError, SegmentWriter, install, iter_lines, verify
from sidecar.contract.stream_ids import format_id, next_id, parse_id, prev_id
from tests.support.traffic import api_records


def as_redis(rec: Record) -> dict[bytes, bytes]:
    """What a bytes-returning client gives back for an XADD of ``rec.to_fields()``."""
    out = {}
    for k, v in rec.to_fields().items():
        out[k.encode()] = str(v).encode() if isinstance(v, int) else v
    return out


latin1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=20)
records = st.builds(
    Record, ts_ns=st.integers(0, 2**63 - 1), conn=latin1, seq=st.integers(0, 2**31),
    client=latin1, method=latin1, target=latin1, version=st.sampled_from(["1.0", "1.1"]),
    headers=st.lists(st.tuples(latin1, latin1), max_size=4), body=st.binary(max_size=300),
    body_len=st.integers(0, 2**40), truncated=st.booleans(), status=st.integers(0, 999),
    resp_headers=st.lists(st.tuples(latin1, latin1), max_size=4), resp_body=st.binary(max_size=300),
    resp_body_len=st.integers(0, 2**40), resp_truncated=st.booleans(),
    latency_us=st.integers(0, 2**40), tls=st.booleans())


@settings(max_examples=300, deadline=None)
@given(records)
def test_entry_line_is_the_record_json_plus_id(rec):
    """A stream entry becomes the line Record.from_json reads back equal, with its id first and
    the schema version on the line; record_line (exports) writes the same bytes."""
    line, ts = entry_line(b"1700000000000-7", as_redis(rec))
    assert ts == rec.ts_ns and line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.startswith(b'{"id":"1700000000000-7","v":%d,' % SCHEMA_VERSION)
    assert line_id(line) == "1700000000000-7" and line_ts(line) == rec.ts_ns
    assert parse_line(line) == ("1700000000000-7", rec)
    assert Record.from_json(line) == rec
    assert record_line("1700000000000-7", rec) == line


def test_entry_line_refuses_what_is_not_a_record():
    """Missing fields, bad numbers, bad header JSON and another schema version are RecordError."""
    good = as_redis(next(api_records(1)))
    for change in ({b"v": b"2"}, {b"status": b"x"}, {b"headers": b"{not json"},
                   {b"headers": b'{"a": 1}'}):
        with pytest.raises(RecordError):
            entry_line(b"1-0", {**good, **change})
    with pytest.raises(RecordError):
        entry_line(b"1-0", {k: v for k, v in good.items() if k != b"ts_ns"})


def write_segment(tmp_path, n=500, start=(1000, 0), name="seg.open"):
    recs = list(api_records(n, seed=5))
    w = SegmentWriter(tmp_path / name)
    sid = start
    for rec in recs:
        line, ts = entry_line(format_id(sid).encode(), as_redis(rec))
        w.append(sid, ts, line)
        sid = next_id(sid)
    return w, recs


def test_segment_round_trip_zstdcat_and_jq(tmp_path):
    """A finished segment reads back line for line, is one valid zstd frame that zstdcat | jq
    can read, and its info (ids, capture times, count, sizes, sha256) matches verify()."""
    w, recs = write_segment(tmp_path)
    info = w.finish(consumer="c1")
    install(w.path, tmp_path, info)
    path = tmp_path / info.file
    assert info.file.endswith(".c1.jsonl.zst") and info.count == 500
    assert (info.first_ts_ns, info.last_ts_ns) == (min(r.ts_ns for r in recs), max(r.ts_ns for r in recs))
    assert [parse_line(line)[1] for line in iter_lines(path)] == recs
    assert verify(path, info) == info
    out = subprocess.run(f"zstdcat {path} | jq -c '[.id, .v, .method]' | head -2", shell=True,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert orjson.loads(out[0]) == ["1000-0", SCHEMA_VERSION, recs[0].method]
    assert info.raw_bytes / info.bytes > 4  # JSON API traffic compresses well


def test_truncated_and_corrupted_segments_are_detected(tmp_path):
    """A segment cut short (as after a power cut) or with a flipped byte fails to read and fails
    verify(), with or without the manifest's checksum to compare with."""
    w, _ = write_segment(tmp_path)
    info = w.finish()
    install(w.path, tmp_path, info)
    path = tmp_path / info.file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SegmentError, match="frame does not end"):
        list(iter_lines(path))
    with pytest.raises(SegmentError, match="checksum"):
        verify(path, info)
    with pytest.raises(SegmentError, match="frame does not end"):
        verify(path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(flipped))
    with pytest.raises(SegmentError):
        verify(path)
    path.write_bytes(data + b"junk")
    with pytest.raises(SegmentError):
        list(iter_lines(path))


def test_segment_ids_must_increase(tmp_path):
    """Appending an id not above the last one is refused (readers merge segments by id)."""
    w, _ = write_segment(tmp_path, n=3, start=(50, 0))
    line, ts = entry_line(b"50-1", as_redis(next(api_records(1))))
    with pytest.raises(ValueError, match="must increase"):
        w.append((50, 1), ts, line)
    w.abort()
    assert not (tmp_path / "seg.open").exists()


def test_install_never_replaces_a_segment(tmp_path):
    """Two segments with the same first id and consumer get two files."""
    infos = []
    for name in ("a.open", "b.open"):
        w, _ = write_segment(tmp_path, n=2, name=name)
        info = w.finish(consumer="c")
        infos.append(install(w.path, tmp_path, info).file)
    assert infos[0] != infos[1] and all((tmp_path / f).exists() for f in infos)


def test_manifest_saves_atomically_and_refuses_other_formats(tmp_path):
    """update() writes manifest.json whole (sorted by first id); a foreign or damaged manifest
    is a clear ManifestError, not a silent empty archive."""
    m = Manifest(tmp_path, "orders")
    assert m.load().segments == []
    w1, _ = write_segment(tmp_path, n=3, start=(2000, 0), name="x.open")
    w2, _ = write_segment(tmp_path, n=3, start=(1000, 0), name="y.open")
    with m.update() as state:
        state.segments += [install(w1.path, tmp_path, w1.finish()),
                           install(w2.path, tmp_path, w2.finish())]
    loaded = Manifest(tmp_path).load()
    assert loaded.stream == "orders" and [s.first_id for s in loaded.segments] == ["1000-0", "2000-0"]
    assert not (tmp_path / "manifest.json.tmp").exists()
    assert [s.first_id for s in loaded.overlapping((1000, 2), (1500, 0))] == ["1000-0"]
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ManifestError, match="not a rewind archive"):
        m.load()
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ManifestError, match="unreadable"):
        m.load()


def test_stream_ids_compare_as_numbers():
    """Ids order by (ms, seq), not as text; neighbours and bad ids behave."""
    assert parse_id("9-0") < parse_id("10-0") and parse_id(b"10-3") == (10, 3)
    assert parse_id("1700") == (1700, 0)
    assert next_id((5, 2)) == (5, 3) and prev_id((5, 0)) < (5, 0) == next_id(prev_id((5, 0)))
    for bad in ("x-1", "1-y", "-1-0"):
        with pytest.raises(ValueError, match="not a stream id"):
            parse_id(bad)
