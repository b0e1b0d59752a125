"""Bad input gives one clear line on stderr, a defined exit code, and no traceback."""

from __future__ import annotations

import pytest

from sidecar.contract.record import Record
from sidecar.contract.streams import stream_key
from tests.support.redis_server import RedisServer
from tests.support.replay import logging_server, run_replay, traffic, write_jsonl
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("err") / "rec.jsonl", traffic(conns=2, total=10,
                                                                            rate=100))


def check(rc, err, code, *words):
    assert rc == code, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_empty_range(records_file):
    rc, _, err = run_replay("--source", str(records_file), "--target", "http://127.0.0.1:9",
                            "--from", "2030-01-01T00:00:00Z")
    check(rc, err, 2, "nothing to replay")


def test_all_filtered(records_file):
    rc, _, err = run_replay("--source", str(records_file), "--target", "http://127.0.0.1:9",
                            "--method", "DELETE")
    check(rc, err, 2, "nothing to replay", "method: 10")


def test_unreachable_target(records_file):
    rc, _, err = run_replay("--source", str(records_file),
                            "--target", f"http://127.0.0.1:{free_port()}")
    check(rc, err, 3, "unreachable")


@pytest.mark.parametrize("text", ["{not json", '{"max_p95": 3}', "[]"])
def test_malformed_thresholds(records_file, tmp_path, text):
    (tmp_path / "t.json").write_text(text)
    rc, _, err = run_replay("--source", str(records_file), "--target", "http://127.0.0.1:9",
                            "--thresholds", str(tmp_path / "t.json"))
    check(rc, err, 2, "--thresholds")


def test_unknown_schema_version_in_file(tmp_path):
    r = traffic(conns=1, total=1, rate=1)[0]
    r.v = 99
    path = write_jsonl(tmp_path / "rec.jsonl", [r])
    rc, _, err = run_replay("--source", str(path), "--target", "http://127.0.0.1:9")
    check(rc, err, 2, "schema v99", "rec.jsonl:1")


def test_unknown_schema_version_in_redis_and_redis_down(tmp_path):
    """A v99 entry in the stream is exit 2; a Redis nobody listens on is exit 4."""
    with RedisServer() as server:
        fields = traffic(conns=1, total=1, rate=1)[0].to_fields()
        fields["v"] = 99
        server.client().xadd(stream_key("api"), fields)
        rc, _, err = run_replay("--source", server.url, "--stream", "api",
                                "--target", "http://127.0.0.1:9")
        check(rc, err, 2, "schema v99")
    rc, _, err = run_replay("--source", f"redis://127.0.0.1:{free_port()}/0", "--stream", "api",
                            "--target", "http://127.0.0.1:9")
    check(rc, err, 4, "cannot read")


def test_replays_from_redis(tmp_path):
    """Records XADDed to a real Redis are replayed like a file's."""
    records = traffic(conns=3, total=30, rate=300)
    with RedisServer() as server, logging_server(tmp_path / "log.jsonl") as srv:
        for r in records:
            server.client().xadd(stream_key("api"), Record.to_fields(r))
        rc, _, err = run_replay("--source", server.url, "--stream", "api", "--target", srv.url)
    assert rc == 0, err
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 30


@pytest.mark.parametrize("args", [["--mode", "rps"], ["--loop"], ["--workers", "0"],
                                  ["--target", "ftp://x"], ["--ignore", "created_at"],
                                  ["--set-header", "nocolon"], ["--from", "yesterday"]])
def test_bad_arguments(records_file, args):
    base = ["--source", str(records_file), "--target", "http://127.0.0.1:9"]
    rc, _, err = run_replay(*base, *args)
    check(rc, err, 2, "error:")
