"""The archiver when the disk fails it: full, read-only, and a damaged newest segment found at
start-up. Nothing is acked that is not durably archived; nothing is lost."""

from __future__ import annotations

import errno
import os
import subprocess
import threading

import pytest
from prometheus_client import CollectorRegistry

from sidecar.archive.group import ArchiveGroup
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.contract.manifest import Manifest
from sidecar.common.redis_client import connect
from tests.support.archive import (
    ArchiveProcess, archive_contents, check_manifest, stream_entry_ids, wait_for,
)
from tests.support.traffic import api_records, xadd_all

STREAM = "orders"
REQUIRE = os.environ.get("REWIND_REQUIRE_BPF") == "1"  # CI: privileged tests may not skip


@pytest.fixture
def tmpfs(tmp_path):
    """A tiny tmpfs (512 KiB) mounted for the test; remount(options) changes it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if REQUIRE:
            pytest.fail(reason)
        pytest.skip(reason)

    try:
        yield Tmpfs(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class Tmpfs:
    def __init__(self, path) -> None:
        self.path = path

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)


def group_state(client):
    return ArchiveGroup(client, STREAM, "x").state()


def assert_nothing_lost(client, root) -> set[str]:
    """Each stream entry is archived once or still unacked in Redis (pending or unread), and
    nothing archived is missing from the manifest."""
    contents = archive_contents(root)
    assert max(contents.values(), default=1) == 1
    check_manifest(root)
    state = group_state(client)
    all_ids = stream_entry_ids(client, STREAM)
    unarchived = [i for i in all_ids if i not in contents]
    pending = {r["message_id"].decode() for r in client.xpending_range(
        "rewind:{orders}:http", "rewind-archiver", "-", "+", 100_000)}
    undelivered = [i for i in unarchived if i not in pending]
    assert all(tuple(map(int, i.split("-"))) > state.last_delivered for i in undelivered)
    return set(contents)


def test_disk_full_acks_nothing_unwritten_exits_4_then_completes(redis_server, tmpfs):
    """With --out on a full disk the archiver logs why (no_space), acks nothing it could not
    write, retries for --write-retry-for and exits 4; after space is freed a restart archives
    the rest, each entry once."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(20_000))
    proc = ArchiveProcess(redis_server.url, STREAM, tmpfs.path, "--segment-bytes", "1MiB",
                          "--write-retry-for", "2s").start()
    assert proc.wait(30) == 4
    failed = proc.events("archive.write_failed")
    assert failed and failed[0]["kind"] == "no_space" and "No space left" in failed[0]["error"]
    assert proc.events("archive.gave_up")
    archived = assert_nothing_lost(client, tmpfs.path / STREAM)
    assert 0 < len(archived) < 20_000
    assert group_state(client).pending > 0
    tmpfs.remount("size=64m")
    proc = ArchiveProcess(redis_server.url, STREAM, tmpfs.path, "--drain").start()
    assert proc.wait(60) == 0
    assert len(assert_nothing_lost(client, tmpfs.path / STREAM)) == 20_000
    assert group_state(client).pending == 0


def test_disk_full_is_retried_until_space_returns(redis_server, tmpfs):
    """While the disk is full the archiver keeps retrying (and counting write errors); once
    space returns it carries on by itself, losing and duplicating nothing."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(15_000))
    cfg = ArchiverConfig(stream=STREAM, root=tmpfs.path / STREAM, consumer="a",
                         segment_bytes=1 << 20, write_retry_for_s=60)
    archiver = Archiver(connect(redis_server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    stop = threading.Event()
    thread = threading.Thread(target=archiver.run, args=(stop,), kwargs={"drain": True})
    thread.start()
    errors = archiver.metrics.registry.get_sample_value
    assert wait_for(lambda: (errors("rewind_archive_segment_write_errors_total",
                                    {"kind": "no_space"}) or 0) >= 2, 20)
    tmpfs.remount("size=64m")
    thread.join(60)
    archiver.close()
    assert not thread.is_alive()
    assert len(assert_nothing_lost(client, tmpfs.path / STREAM)) == 15_000


def test_read_only_out_exits_3_and_reads_nothing(redis_server, tmpfs):
    """An --out the archiver cannot write to (a read-only mount; root ignores file modes) is
    refused at start with exit code 3 and a reason; no entry is read or acked."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(100))
    tmpfs.remount("ro")
    proc = ArchiveProcess(redis_server.url, STREAM, tmpfs.path).start()
    assert proc.wait(20) == 3
    assert "Read-only file system" in proc.events("archive.out_unusable")[0]["error"]
    assert client.exists("rewind:{orders}:http") and not client.xinfo_groups("rewind:{orders}:http")


def test_truncated_newest_segment_is_set_aside_and_rearchived_from_redis(redis_server, tmp_path):
    """A newest segment cut short after its entries were acked (a power cut on a disk that
    lied about fsync) fails its checksum at start-up, is moved to quarantine/, and its records
    are archived again from the stream: complete, no duplicates."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(5000))
    args = ("--segment-bytes", "1MiB", "--drain")
    assert ArchiveProcess(redis_server.url, STREAM, tmp_path, *args).start().wait(60) == 0
    root = tmp_path / STREAM
    newest = Manifest(root).load().segments[-1]
    path = root / newest.file
    path.write_bytes(path.read_bytes()[: newest.bytes // 2])
    proc = ArchiveProcess(redis_server.url, STREAM, tmp_path, *args).start()
    assert proc.wait(60) == 0
    assert proc.events("archive.segment_corrupt")[0]["file"] == newest.file
    repaired = proc.events("archive.segment_repaired")[0]
    assert repaired["repaired"] == newest.count and repaired["lost_estimate"] == 0
    assert len(list((root / "quarantine").iterdir())) == 1
    assert sorted(archive_contents(root)) == sorted(stream_entry_ids(client, STREAM))
    check_manifest(root)


def test_corrupt_segment_whose_entries_are_still_pending(redis_server, tmp_path, monkeypatch):
    """The archiver dies after listing a segment and before acking it, and the segment is then
    damaged: at start-up it is set aside and its entries, still pending, are archived again."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(2000))
    cfg = ArchiverConfig(stream=STREAM, root=tmp_path, consumer="a", segment_bytes=256 << 10)
    first = Archiver(connect(redis_server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    first.open()

    class Crash(BaseException):
        pass

    def ack(ids):
        if list(ids):
            raise Crash
    monkeypatch.setattr(first.group, "ack", ack)
    with pytest.raises(Crash):
        first.run(threading.Event(), drain=True)
    first.close()
    seg = Manifest(tmp_path).load().segments[-1]
    flipped = bytearray((tmp_path / seg.file).read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / seg.file).write_bytes(bytes(flipped))
    assert group_state(client).pending >= seg.count  # the segment, and the rest of its batch
    second = Archiver(connect(redis_server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    second.open()
    second.run(threading.Event(), drain=True)
    second.close()
    assert second.metrics.registry.get_sample_value("rewind_archive_corrupt_segments_total") == 1
    assert sorted(archive_contents(tmp_path)) == sorted(stream_entry_ids(client, STREAM))
    assert max(archive_contents(tmp_path).values()) == 1
    assert group_state(client).pending == 0


def test_fsync_errors_while_closing_acks_nothing_and_retries(redis_server, tmp_path, monkeypatch):
    """fsync failing (EIO) while a segment is closed abandons that segment, acks none of it,
    is counted as an io write error, and the retry archives everything exactly once."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(3000))
    real_fsync, failures = os.fsync, {"left": 3}

    def fsync(fd):  # fails for the segment being closed only
        if failures["left"] and os.readlink(f"/proc/self/fd/{fd}").endswith(".open"):
            failures["left"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr("sidecar.contract.segments.os.fsync", fsync)
    cfg = ArchiverConfig(stream=STREAM, root=tmp_path, consumer="a", segment_bytes=1 << 20,
                         write_retry_for_s=30)
    archiver = Archiver(connect(redis_server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    archiver.run(threading.Event(), drain=True)
    archiver.close()
    errors = archiver.metrics.registry.get_sample_value
    assert errors("rewind_archive_segment_write_errors_total", {"kind": "io"}) == 3
    assert sorted(archive_contents(tmp_path)) == sorted(stream_entry_ids(client, STREAM))
    assert max(archive_contents(tmp_path).values()) == 1
    assert group_state(client).pending == 0


def test_unreadable_manifest_is_rebuilt_from_the_segments(redis_server, tmp_path):
    """A damaged manifest.json is set aside at start-up and rebuilt from the segment files,
    which describe themselves: the archive stays complete and readable."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(3000))
    args = ("--segment-bytes", "1MiB", "--drain")
    assert ArchiveProcess(redis_server.url, STREAM, tmp_path, *args).start().wait(60) == 0
    root = tmp_path / STREAM
    before = Manifest(root).load().segments
    (root / "manifest.json").write_bytes(b'{"format": "rewind-archive", "vers')
    proc = ArchiveProcess(redis_server.url, STREAM, tmp_path, *args).start()
    assert proc.wait(60) == 0 and proc.events("archive.manifest_unreadable")
    after = Manifest(root).load().segments
    assert [(s.file, s.sha256, s.count) for s in after] == [(s.file, s.sha256, s.count) for s in before]
    assert sorted(archive_contents(root)) == sorted(stream_entry_ids(client, STREAM))
