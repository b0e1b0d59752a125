"""rewind-inspect against a real redis-server and a real archive: list, show, export, count,
verify, and the answers to empty ranges and bad arguments."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry

from replayer.inspect.cli import main
from sidecar.archive.metrics import ArchiveMetrics
from sidecar.archive.archiver import Archiver, ArchiverConfig
from sidecar.contract.manifest import Manifest
from sidecar.common.redis_client import connect
from tests.support.traffic import api_records, xadd_all

STREAM = "orders"


@pytest.fixture
def captured(redis_server, tmp_path):
    """2,000 records in Redis, the first 1,500 also archived under tmp_path/archive/orders."""
    client = redis_server.client()
    recs = list(api_records(2000))
    xadd_all(client, STREAM, recs[:1500])
    cfg = ArchiverConfig(stream=STREAM, root=tmp_path / "archive" / STREAM, consumer="a",
                         segment_bytes=512 << 10)
    archiver = Archiver(connect(redis_server.url), cfg, metrics=ArchiveMetrics(CollectorRegistry()))
    archiver.open()
    archiver.run(threading.Event(), drain=True)
    archiver.close()
    xadd_all(client, STREAM, recs[1500:])
    return redis_server.url, tmp_path / "archive", recs


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_streams_and_archives_with_spans(captured, capsys):
    """list names each stream in Redis and each archive in the folder with its record count."""
    url, folder, _ = captured
    code, out, _ = run(capsys, "list", "--source", url, "--source", str(folder), "--jsonl")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0
    assert {(r["kind"], r["stream"], r["count"]) for r in rows} == {
        ("redis", STREAM, 2000), ("archive", STREAM, 1500)}
    code, out, _ = run(capsys, "list", "--source", url, "--source", str(folder))
    assert code == 0 and "RECORDS" in out and "2,000" in out and "1,500" in out


def test_show_prints_a_table_or_json_lines(captured, capsys):
    """show prints a short table by default and JSON Lines (one record each, with its id) with
    --jsonl; --limit stops early; Redis and the archive are joined."""
    url, folder, recs = captured
    code, out, _ = run(capsys, "show", "--source", url, "--source", str(folder), "--stream",
                       STREAM, "--limit", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["TIME", "(UTC)", "ID"] and len(lines) == 4
    assert recs[0].target in lines[1]
    code, out, _ = run(capsys, "show", "--source", url, "--source", str(folder), "--stream",
                       STREAM, "--jsonl", "--from", "-1h")
    docs = [orjson.loads(line) for line in out.splitlines()]
    assert len(docs) == 2000 and [d["target"] for d in docs] == [r.target for r in recs]


def test_export_then_read_the_file_back_and_count(captured, capsys, tmp_path):
    """export writes a range to one zstd file, which is itself a source: count reads it and
    groups by method, path (ids folded) and status."""
    url, folder, recs = captured
    out_file = tmp_path / "range.jsonl.zst"
    code, _, err = run(capsys, "export", "--source", url, "--source", str(folder), "--stream",
                       STREAM, "--out", str(out_file))
    assert code == 0 and "exported 2,000 records" in err
    code, out, _ = run(capsys, "count", "--source", str(out_file), "--jsonl", "--top", "100")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert sum(r["count"] for r in rows) == 2000
    want = sum(1 for r in recs if r.method == "GET" and r.target.startswith("/orders/") and r.status == 200)
    assert {"method": "GET", "path": "/orders/{id}", "status": 200, "count": want} in rows
    code, out, _ = run(capsys, "count", "--source", str(out_file), "--by", "status")
    assert code == 0 and out.splitlines()[-1].split()[:2] == ["total", "2,000"]


def test_empty_and_future_ranges_answer_clearly_with_exit_0(captured, capsys):
    """A range with nothing in it, or in the future, prints a one-line explanation on stderr
    and exits 0."""
    url, folder, _ = captured
    code, out, err = run(capsys, "show", "--source", url, "--stream", STREAM, "--from", "+1h",
                         "--to", "+10m")
    assert code == 0 and out == "" and "is in the future" in err
    code, out, err = run(capsys, "show", "--source", str(folder), "--from", "-3h", "--to", "-2h")
    assert code == 0 and out == "" and err.startswith("no records in")


def test_verify_finds_a_damaged_segment(captured, capsys):
    """verify checks every segment against the manifest and exits 1 naming a damaged one."""
    _, folder, _ = captured
    assert run(capsys, "verify", "--source", str(folder))[0] == 0
    seg = Manifest(folder / STREAM).load().segments[0]
    path = folder / STREAM / seg.file
    path.write_bytes(path.read_bytes()[:-10])
    code, out, _ = run(capsys, "verify", "--source", str(folder))
    assert code == 1 and f"FAIL {seg.file}" in out


@pytest.mark.parametrize("argv, message", [
    (["show", "--source", "redis://127.0.0.1:1/0"], "--stream NAME is needed"),
    (["show", "--source", "/no/such/place"], "no such file or folder"),
    (["show", "--source", ".", "--from", "yesterday"], "not a time"),
    (["show", "--source", ".", "--from", "-1h", "--to", "-2h"], "ends"),
])
def test_bad_arguments_exit_2_with_a_reason(capsys, argv, message):
    """Bad --source, times and windows exit 2 before any work, saying what to change."""
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err


def test_unreachable_redis_is_a_one_line_failure(capsys):
    """Redis not answering exits 1 with one line, not a traceback."""
    started = time.monotonic()
    code, _, err = run(capsys, "show", "--source", "redis://127.0.0.1:1/0", "--stream", STREAM)
    assert code == 1 and "Error" in err and len(err.splitlines()) == 1
    assert time.monotonic() - started < 15
