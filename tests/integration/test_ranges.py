"""Reading ranges from Redis, the archive, or both joined, against a real redis-server."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from replayer.source.ordering import ReadStats
from replayer.source.reader import SourceError, open_source
from replayer.source.window import Window
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.contract.streams import stream_key
from sidecar.common.redis_client import connect
from tests.support.archive import stream_entry_ids
from tests.support.traffic import api_records, xadd_all

STREAM = "orders"
KEY = stream_key(STREAM)
MS = 1_000_000
S = 1_000_000_000


def archive(server, out, *, trim: bool) -> None:
    cfg = ArchiverConfig(stream=STREAM, root=out / STREAM, consumer="a", trim_archived=trim,
                         segment_bytes=1 << 20)
    archiver = Archiver(connect(server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    archiver.run(threading.Event(), drain=True)
    archiver.close()


def sort_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def test_range_across_trimmed_and_live_parts_is_complete_and_in_order(redis_server, tmp_path):
    """6,000 records archived and trimmed from Redis, then 4,000 more still only in Redis: a
    source joining both returns all 10,000 once, in order, from the right places; a time
    window across the boundary returns exactly its records in capture order."""
    client = redis_server.client()
    start = time.time_ns()
    recs = list(api_records(10_000, start_ns=start))
    ids = [i.decode() for i in xadd_all(client, STREAM, recs[:6000])]
    archive(redis_server, tmp_path, trim=True)
    assert client.xlen(KEY) <= 1
    ids += [i.decode() for i in xadd_all(client, STREAM, recs[6000:])]
    source = open_source([redis_server.url, str(tmp_path)], STREAM)
    stats = ReadStats()
    got = list(source.read(Window(), order="stream", stats=stats))
    assert [i for i, _ in got] == ids
    assert [r for _, r in got] == recs
    assert stats.from_archive >= 5999 and stats.from_redis >= 4000
    assert stats.from_archive + stats.from_redis == 10_000
    times = sorted(r.ts_ns for r in recs)
    window = Window(start_ns=times[5000], end_ns=times[7000])
    part = [r.ts_ns for _, r in source.read(window)]
    assert part == times[5000:7000]


def test_trimming_while_reading_leaves_no_gap(redis_server, tmp_path):
    """The archiver trims Redis while a reader is half-way through: the entries trimmed under
    the reader's cursor are read from the archive, so the result has no gap and no repeat."""
    client = redis_server.client()
    ids = [i.decode() for i in xadd_all(client, STREAM, api_records(10_000))]
    archive(redis_server, tmp_path, trim=False)
    source = open_source([redis_server.url, str(tmp_path)], STREAM)
    source.backend.redis.page = 500
    stats = ReadStats()
    got = []
    for n, (entry_id, _rec) in enumerate(source.read(Window(), order="stream", stats=stats)):
        got.append(entry_id)
        if n == 1000:  # everything is archived: trimming up to #6000 is what --trim-archived does
            client.xtrim(KEY, minid=ids[6000])
    assert got == ids
    assert 4000 <= stats.from_archive <= 5000 and stats.from_redis >= 5000


def test_empty_and_future_windows_are_empty_not_errors(redis_server, tmp_path):
    """A window before anything was captured, one in the future, and a stream that does not
    exist all read as nothing, without an error."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(100))
    archive(redis_server, tmp_path, trim=False)
    source = open_source([redis_server.url, str(tmp_path)], STREAM)
    now = time.time_ns()
    assert list(source.read(Window(start_ns=now - 3600 * S, end_ns=now - 3500 * S))) == []
    assert list(source.read(Window(start_ns=now + 3600 * S, end_ns=now + 7200 * S))) == []
    assert list(source.read(Window(start_id=(1, 0), end_id=(2, 0)))) == []
    assert list(open_source(redis_server.url, "never-captured").read(Window())) == []


def xadd_at(client, arrivals) -> None:
    """XADD records at chosen stream ids: (id ms, capture ms) pairs."""
    recs = api_records(len(arrivals), seed=3)
    pipe = client.pipeline(transaction=False)
    for (id_ms, ts_ms), rec in zip(arrivals, recs, strict=True):
        rec.ts_ns = ts_ms * MS
        pipe.xadd(KEY, rec.to_fields(), id=f"{id_ms}-0")
    pipe.execute()


def test_capture_order_across_two_sidecars_in_bounded_memory(redis_server):
    """Two sidecars, one publishing 300 ms late, interleave out of capture order in the stream;
    the reader returns capture order while holding only the reorder window's records."""
    client = redis_server.client()
    base = 1_715_680_800_000
    arrivals = []
    for i in range(8_000):  # one record every 2 ms from each sidecar
        arrivals.append((base + 2 * i, base + 2 * i))  # sidecar A: published at once
        arrivals.append((base + 2 * i + 1, base + 2 * i - 299))  # sidecar B: 300 ms late
    xadd_at(client, arrivals)
    stats = ReadStats()
    source = open_source(redis_server.url, STREAM, reorder_ns=1 * S)
    got = [r.ts_ns for _, r in source.read(Window(), stats=stats)]
    assert got == sorted(ts * MS for _, ts in arrivals)
    assert stats.late == 0 and stats.held_max < 1400  # ~1.3 s of records, not 16,000
    in_stream = [r.ts_ns for _, r in source.read(Window(), order="stream")]
    assert in_stream != got


def test_margin_decides_how_late_a_record_may_be_published(redis_server):
    """A record published 90 s after its capture time is outside a 1-minute margin at its
    window's edge, and inside a 2-minute one: the documented limit of time windows."""
    client = redis_server.client()
    t = 1_715_680_800_000
    xadd_at(client, [(t + 90_000, t)])
    window = Window(start_ns=(t - 1000) * MS, end_ns=(t + 1000) * MS)
    assert list(open_source(redis_server.url, STREAM, margin_ns=60 * S).read(window)) == []
    assert len(list(open_source(redis_server.url, STREAM, margin_ns=120 * S).read(window))) == 1


def test_id_windows_and_single_places(redis_server, tmp_path):
    """An id window is inclusive at both ends, from Redis alone or the archive alone."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(500))
    archive(redis_server, tmp_path, trim=False)
    ids = stream_entry_ids(client, STREAM)
    window = Window(start_id=sort_key(ids[100]), end_id=sort_key(ids[199]))
    for spec in (redis_server.url, str(tmp_path / STREAM)):
        got = [i for i, _ in open_source(spec, STREAM).read(window, order="stream")]
        assert got == ids[100:200], spec


def test_bad_sources_say_what_to_change(redis_server, tmp_path):
    """A Redis URL without --stream, two archives, or a missing path are refused clearly."""
    with pytest.raises(SourceError, match="--stream NAME is needed"):
        open_source(redis_server.url)
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="not an archive folder"):
        open_source(str(tmp_path))
