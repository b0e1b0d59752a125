"""The archiver's stream-length gauges against a real redis-server: rewind_archive_stream_length
follows XLEN, rewind_archive_stream_maxlen carries --stream-maxlen (0 when not given), which is
what the RewindStreamNearCap alert compares."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from sidecar.archive import cli as archive_cli
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.contract.streams import stream_key
from sidecar.common.redis_client import connect
from tests.support.traffic import api_records, xadd_all

STREAM = "orders"


def gauge(archiver: Archiver, name: str) -> float | None:
    return archiver.metrics.registry.get_sample_value(f"rewind_archive_{name}")


def make_archiver(server, root, **cfg) -> Archiver:
    config = ArchiverConfig(stream=STREAM, root=root, consumer="a", **cfg)
    archiver = Archiver(connect(server.url), config, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    return archiver


def test_stream_length_follows_xlen_and_maxlen_is_exported(redis_server, tmp_path):
    """After archiving 900 entries of a stream capped at 1000, the gauges read 900 and 1000;
    capped XADDs and an archived trim move the length gauge with XLEN."""
    client = redis_server.client()
    xadd_all(client, STREAM, api_records(900))
    archiver = make_archiver(redis_server, tmp_path, stream_maxlen=1000)
    try:
        archiver.run(threading.Event(), drain=True)
        archiver.upkeep.refresh_metrics()
        assert gauge(archiver, "stream_length") == 900
        assert gauge(archiver, "stream_maxlen") == 1000
        for i in range(300):  # the capture's own cap, exact here so the count is known
            client.xadd(stream_key(STREAM), {b"x": str(i).encode()}, maxlen=1000, approximate=False)
        archiver.upkeep.refresh_metrics()
        assert gauge(archiver, "stream_length") == client.xlen(stream_key(STREAM)) == 1000
        client.xtrim(stream_key(STREAM), maxlen=10, approximate=False)
        archiver.upkeep.refresh_metrics()
        assert gauge(archiver, "stream_length") == 10
    finally:
        archiver.close()


def test_maxlen_gauge_is_zero_when_not_given(redis_server, tmp_path):
    """Without --stream-maxlen the cap is unknown: the gauge stays 0 (the alert ignores it) while
    the length is still exported."""
    xadd_all(redis_server.client(), STREAM, api_records(5))
    archiver = make_archiver(redis_server, tmp_path)
    try:
        archiver.run(threading.Event(), drain=True)
        archiver.upkeep.refresh_metrics()
        assert gauge(archiver, "stream_length") == 5
        assert gauge(archiver, "stream_maxlen") == 0
    finally:
        archiver.close()


def test_stream_maxlen_flag_and_environment(monkeypatch, capsys):
    """--stream-maxlen and REWIND_STREAM_MAXLEN both set it; zero or less exits 2 with one line."""
    base = ["--stream", STREAM, "--out", "/tmp/x"]
    assert archive_cli.parse(base).stream_maxlen is None
    assert archive_cli.parse([*base, "--stream-maxlen", "500000"]).stream_maxlen == 500000
    monkeypatch.setenv("REWIND_STREAM_MAXLEN", "2000")
    assert archive_cli.parse(base).stream_maxlen == 2000
    with pytest.raises(SystemExit) as exc:
        archive_cli.parse([*base, "--stream-maxlen", "0"])
    assert exc.value.code == 2
    assert "--stream-maxlen must be positive" in capsys.readouterr().err
