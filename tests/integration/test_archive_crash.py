"""Crash safety and shared work: kill -9 at random points, a crash at each step of closing a
segment, two archivers on one stream, and a dead consumer taken over by a sibling."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis
from prometheus_client import CollectorRegistry

import sidecar.archive.archiver as archiver_module
from sidecar.archive.group import ArchiveGroup
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.common.redis_client import connect
from tests.support.archive import (
    ArchiveProcess, archive_contents, check_manifest, stream_entry_ids, wait_for,
)
from tests.support.traffic import StreamWriter, api_records, xadd_all

STREAM = "orders"
FAST = ("--segment-bytes", "2MiB", "--segment-seconds", "1s", "--claim-interval", "1s")


def group_state(client):
    """The archiver group's state, or None while the group does not exist yet."""
    try:
        return ArchiveGroup(client, STREAM, "x").state()
    except redis.ResponseError:
        return None


def caught_up(client) -> bool:
    state = group_state(client)
    return state is not None and state.pending == 0 and state.lag == 0


def assert_exactly_once(client, root) -> None:
    contents = archive_contents(root)
    twice = [i for i, n in contents.items() if n > 1]
    missing = set(stream_entry_ids(client, STREAM)) - set(contents)
    assert not twice, f"{len(twice)} entries archived twice, e.g. {twice[:3]}"
    assert not missing, f"{len(missing)} entries never archived, e.g. {sorted(missing)[:3]}"
    check_manifest(root)


@pytest.mark.slow
def test_kill_9_at_random_points_while_100k_records_flow(redis_server, tmp_path):
    """rewind-archive is SIGKILLed six times at random moments while a writer adds 100,000
    records; after each restart (same name, or a new one taking over the dead consumer) and a
    final clean stop, every stream entry is in exactly one segment: none twice, none missing."""
    client = redis_server.client()
    rng = random.Random()
    writer = StreamWriter(redis_server.client(), STREAM, api_records(100_000, seed=11), rate=9000)
    writer.start()
    kills = []
    for n in range(6):
        consumer = "arch-0" if n % 3 else f"arch-{n}"  # sometimes a new name: takeover path
        proc = ArchiveProcess(redis_server.url, STREAM, tmp_path, *FAST, consumer=consumer).start()
        time.sleep(rng.uniform(0.3, 1.8))
        proc.kill()
        kills.append(len(proc.logs))
    writer.join(60)
    assert writer.error is None and len(writer.ids) == 100_000
    final = ArchiveProcess(redis_server.url, STREAM, tmp_path, *FAST, consumer="arch-0").start()
    assert wait_for(lambda: caught_up(client), 45), ArchiveGroup(client, STREAM, "x").state()
    assert final.stop() == 0
    assert_exactly_once(client, tmp_path / STREAM)
    assert len(archive_contents(tmp_path / STREAM)) == 100_000


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no clean-up."""


def crash_archiver(monkeypatch, archiver: Archiver, point: str, after: int) -> None:
    """Make ``archiver`` die at ``point`` of its ``after``-th segment close."""
    closes = {"n": 0}
    real_install, real_ack = archiver_module.install, archiver.group.ack

    def due() -> bool:
        return closes["n"] >= after

    def install(tmp, root, info):
        closes["n"] += 1
        if point == "before_install" and due():
            raise Crash
        result = real_install(tmp, root, info)
        if point == "before_listing" and due():
            raise Crash
        return result

    def ack(ids):
        ids = list(ids)
        if point == "before_ack" and due() and ids:
            raise Crash
        if point == "half_acked" and due() and len(ids) > 1:
            real_ack(ids[: len(ids) // 2])
            raise Crash
        real_ack(ids)

    monkeypatch.setattr(archiver_module, "install", install)
    monkeypatch.setattr(archiver.group, "ack", ack)


def in_process(server, root, consumer="a") -> Archiver:
    cfg = ArchiverConfig(stream=STREAM, root=root, consumer=consumer, segment_bytes=256 << 10)
    archiver = Archiver(connect(server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    return archiver


@pytest.mark.parametrize("point", ["before_install", "before_listing", "before_ack", "half_acked"])
def test_crash_at_each_step_of_closing_a_segment(redis_server, tmp_path, monkeypatch, point):
    """The archiver dies before the rename, between rename and manifest, between manifest and
    XACK, or half-way through the XACKs; the next start archives each entry exactly once
    (re-delivered entries already in a segment are acked, not written again)."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(3000))
    first = in_process(redis_server, tmp_path)
    crash_archiver(monkeypatch, first, point, after=3)
    with pytest.raises(Crash):
        first.run(threading.Event(), drain=True)
    first.close()  # the kernel drops a dead process's lock
    monkeypatch.undo()
    assert ArchiveGroup(client, STREAM, "x").state().pending > 0
    second = in_process(redis_server, tmp_path)
    second.run(threading.Event(), drain=True)
    second.close()
    assert caught_up(client)
    assert_exactly_once(client, tmp_path)
    skipped = second.metrics.registry.get_sample_value("rewind_archive_duplicates_skipped_total")
    assert (skipped > 0) == (point in ("before_listing", "before_ack", "half_acked"))


def test_dead_consumer_is_taken_over_by_a_sibling(redis_server, tmp_path):
    """A consumer killed with entries pending and an open segment is found dead (its lock is
    free) by a sibling with another name, which claims its entries, archives them once,
    removes its open segment, and deletes it from the group."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(4000))
    dead = ArchiveProcess(redis_server.url, STREAM, tmp_path, "--segment-seconds", "30s",
                          consumer="gone").start()
    assert wait_for(lambda: (st := group_state(client)) is not None and st.lag == 0, 20)
    dead.kill()  # everything is pending in its open segment (no segment closed yet)
    assert ArchiveGroup(client, STREAM, "x").state().pending == 4000
    sibling = ArchiveProcess(redis_server.url, STREAM, tmp_path, "--drain", consumer="other").start()
    assert sibling.wait(30) == 0
    taken = sibling.events("archive.consumer_taken_over")
    assert taken and taken[0]["consumer"] == "gone" and taken[0]["entries"] == 4000
    assert not (tmp_path / STREAM / "tmp" / "gone.open").exists()
    assert "gone" not in {c.name for c in ArchiveGroup(client, STREAM, "x").consumers()}
    assert caught_up(client)
    assert_exactly_once(client, tmp_path / STREAM)


@pytest.mark.slow
def test_two_archivers_share_one_stream(redis_server, tmp_path):
    """Two archivers (one group, two consumers, one folder) on a stream fed by a writer both
    do part of the work; the union of their segments is complete, with no duplicates."""
    client = redis_server.client()
    writer = StreamWriter(redis_server.client(), STREAM, api_records(30_000, seed=5), rate=10_000)
    writer.start()
    procs = [ArchiveProcess(redis_server.url, STREAM, tmp_path, *FAST, "--batch", "200",
                            consumer=f"arch-{i}").start() for i in range(2)]
    writer.join(60)
    assert writer.error is None
    assert wait_for(lambda: caught_up(client), 30)
    assert [p.stop() for p in procs] == [0, 0]
    assert_exactly_once(client, tmp_path / STREAM)
    from sidecar.contract.manifest import Manifest
    by_consumer = {s.consumer for s in Manifest(tmp_path / STREAM).load().segments}
    assert by_consumer == {"arch-0", "arch-1"}
