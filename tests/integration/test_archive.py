"""The archiver against a real redis-server: exactly-once segments, closing on size and age,
trimming, retention, bad and deleted entries, metrics, and the rewind-archive command."""

from __future__ import annotations

import subprocess
import threading
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.archive.group import ArchiveGroup
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.contract.manifest import Manifest
from sidecar.contract.record import Record
from sidecar.contract.streams import ARCHIVER_GROUP, stream_key
from sidecar.common.redis_client import connect
from tests.support.archive import (
    ArchiveProcess, archive_contents, check_manifest, stream_entry_ids, wait_for,
)
from tests.support.traffic import api_records, xadd_all

STREAM = "orders"
KEY = stream_key(STREAM)
DAY_NS = 86_400 * 1_000_000_000


def make_archiver(server, root, consumer="a", **cfg) -> Archiver:
    config = ArchiverConfig(stream=STREAM, root=root, consumer=consumer, **cfg)
    archiver = Archiver(connect(server.url), config, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    return archiver


def metric(archiver: Archiver, name: str, **labels) -> float:
    return archiver.metrics.registry.get_sample_value(f"rewind_archive_{name}", labels) or 0.0


def test_command_archives_every_entry_once_in_jq_readable_segments(redis_server, tmp_path):
    """rewind-archive --drain writes each stream entry to exactly one segment, acks them all,
    lists every segment in the manifest, and `zstdcat SEGMENT | jq` reads a segment."""
    client = redis_server.client()
    ids = xadd_all(client, STREAM, api_records(6000))
    proc = ArchiveProcess(redis_server.url, STREAM, tmp_path, "--drain",
                          "--segment-bytes", "2MiB").start()
    assert proc.wait(60) == 0, proc.logs[-5:]
    root = tmp_path / STREAM
    contents = archive_contents(root)
    assert set(contents) == {i.decode() for i in ids} and max(contents.values()) == 1
    check_manifest(root)
    state = Manifest(root).load()
    assert len(state.segments) >= 3 and sum(s.count for s in state.segments) == 6000
    assert ArchiveGroup(client, STREAM, "x").state().pending == 0
    seg = root / state.segments[0].file
    shown = subprocess.run(f"zstdcat {seg} | jq -c '[.id, .v, .method, .status]' | head -1",
                           shell=True, capture_output=True, check=True).stdout
    first = subprocess.run(f"zstdcat {seg} | head -1", shell=True, capture_output=True,
                           check=True).stdout
    doc = orjson.loads(first)
    assert orjson.loads(shown) == [state.segments[0].first_id, 1, doc["method"], doc["status"]]
    assert Record.from_json(doc) == Record.from_fields(client.xrange(KEY, doc["id"], doc["id"])[0][1])


def test_idle_stream_still_gets_a_segment_by_age(redis_server, tmp_path):
    """A few records and then silence: the segment closes --segment-seconds after its first
    record, is readable, and its entries are acked, while the archiver keeps running."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(7))
    archiver = make_archiver(redis_server, tmp_path, segment_seconds=0.5, block_ms=100)
    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,))
    thread.start()
    try:
        assert wait_for(lambda: len(Manifest(tmp_path).load().segments) == 1, 5)
        assert thread.is_alive()
        assert sum(archive_contents(tmp_path).values()) == 7
        assert wait_for(lambda: ArchiveGroup(client, STREAM, "x").state().pending == 0, 5)
    finally:
        stop.set()
        thread.join(10)
        archiver.close()


def test_existing_group_is_used_and_a_consumer_name_runs_once(redis_server, tmp_path):
    """An existing group is fine (BUSYGROUP is not an error), and a second archiver with a
    consumer name already running on the folder exits with code 3 and says why."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(10))
    client.xgroup_create(KEY, ARCHIVER_GROUP, id="0")
    first = ArchiveProcess(redis_server.url, STREAM, tmp_path, consumer="same").start()
    try:
        first.wait_log("archive.started")
        assert wait_for(lambda: ArchiveGroup(client, STREAM, "x").state().lag == 0, 10)
        second = ArchiveProcess(redis_server.url, STREAM, tmp_path, consumer="same").start()
        assert second.wait(20) == 3
        assert "in use by another running archiver" in second.events("archive.consumer_busy")[0]["error"]
    finally:
        assert first.stop() == 0
    assert sum(archive_contents(tmp_path / STREAM).values()) == 10


def test_trim_archived_removes_only_what_is_archived(redis_server, tmp_path):
    """--trim-archived trims Redis below the oldest entry not yet archived: entries another
    consumer holds pending (not archived) and everything after them stay in Redis."""
    client = redis_server.client()
    ids = [i.decode() for i in xadd_all(client, STREAM, api_records(3000))]
    group = ArchiveGroup(client, STREAM, "busy-sibling")
    group.ensure()
    group.read_new(10, None)  # a live sibling (no lock file here, not idle) holds 10 pending
    archiver = make_archiver(redis_server, tmp_path, trim_archived=True, segment_bytes=512 << 10)
    archiver.run(threading.Event(), drain=True)
    archiver.close()
    assert stream_entry_ids(client, STREAM) == ids  # its min pending is the first entry
    client.xack(KEY, ARCHIVER_GROUP, *ids[:10])  # pretend the sibling archived them
    archiver = make_archiver(redis_server, tmp_path, trim_archived=True)
    xadd_all(client, STREAM, api_records(5, seed=9))
    archiver.run(threading.Event(), drain=True)
    archiver.close()
    left = stream_entry_ids(client, STREAM)
    assert len(left) <= 1  # everything archived is gone (XTRIM keeps at most the last one)
    assert metric(archiver, "trimmed_entries_total") >= 3004
    assert set(ids[10:]) <= set(archive_contents(tmp_path))


def test_keep_days_deletes_old_segments_and_their_manifest_entries(redis_server, tmp_path):
    """--keep-days removes segments whose newest record is older than the limit, file and
    manifest entry, and keeps the recent ones."""
    client = redis_server.client()
    now = time.time_ns()
    xadd_all(client, STREAM, api_records(50, start_ns=now - 10 * DAY_NS))
    archiver = make_archiver(redis_server, tmp_path)
    archiver.run(threading.Event(), drain=True)  # one old segment
    xadd_all(client, STREAM, api_records(50, start_ns=now))
    archiver.run(threading.Event(), drain=True)  # one recent segment
    old = Manifest(tmp_path).load().segments[0]
    assert len(Manifest(tmp_path).load().segments) == 2
    archiver.cfg.keep_days = 7
    archiver.upkeep.retention()
    archiver.close()
    state = Manifest(tmp_path).load()
    assert [s.count for s in state.segments] == [50] and state.segments[0].last_ts_ns >= now
    assert not (tmp_path / old.file).exists()
    assert metric(archiver, "deleted_segments_total") == 1


def test_bad_and_deleted_entries_are_counted_and_acked(redis_server, tmp_path):
    """An entry that is not a record goes to rejected.jsonl and is acked; an entry deleted from
    the stream before it was archived is counted as lost; neither blocks the rest."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(20))
    bad = client.xadd(KEY, {"hello": "world"})
    xadd_all(client, STREAM, api_records(5, seed=4))
    group = ArchiveGroup(client, STREAM, "a")
    group.ensure()
    delivered = group.read_new(3, None)  # consumer "a" read three, then died
    client.xdel(KEY, delivered[1][0])
    archiver = make_archiver(redis_server, tmp_path, consumer="a")
    with capture_logs() as logs:
        archiver.run(threading.Event(), drain=True)
    archiver.close()
    assert sum(archive_contents(tmp_path).values()) == 24
    rejected = [orjson.loads(line) for line in (tmp_path / "rejected.jsonl").read_bytes().splitlines()]
    assert [r["id"] for r in rejected] == [bad.decode()]
    assert metric(archiver, "bad_entries_total") == 1
    assert metric(archiver, "lost_entries_total", reason="deleted_before_archived") == 1
    assert {"archive.bad_entry", "archive.entry_lost"} <= {e["event"] for e in logs}
    assert ArchiveGroup(client, STREAM, "x").state().pending == 0


def test_metrics_report_records_bytes_ratio_lag_and_pending(redis_server, tmp_path):
    """After archiving, the metrics count records and bytes, a compression ratio above 1, and
    the lag and pending gauges follow the group (lag grows with new, unread entries)."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(2000))
    archiver = make_archiver(redis_server, tmp_path)
    archiver.run(threading.Event(), drain=True)
    assert metric(archiver, "records_total") == 2000
    written = metric(archiver, "bytes_written_total")
    assert written > 0 and metric(archiver, "raw_bytes_total") / written == pytest.approx(
        metric(archiver, "compression_ratio"))
    assert metric(archiver, "compression_ratio") > 5
    xadd_all(client, STREAM, api_records(30, seed=8))
    archiver.upkeep.refresh_metrics()
    archiver.close()
    assert metric(archiver, "lag_records") == 30 and metric(archiver, "pending_entries") == 0
    assert metric(archiver, "lag_seconds") >= 0
    assert metric(archiver, "segment_write_errors_total", kind="no_space") == 0
