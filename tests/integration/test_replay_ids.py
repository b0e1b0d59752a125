"""--from/--to as stream ids: exactly the entries between two ids of a Redis stream are replayed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.support.replay import logging_server, read_log, run_replay, traffic
from tests.support.traffic import xadd_all

pytestmark = pytest.mark.slow


def test_id_range_from_redis(redis_server, tmp_path):
    """Of 200 records, --from the 50th id --to the 149th id sends those 100, both ends included,
    each with its recorded HTTP version (every tenth is HTTP/1.0)."""
    records = [replace(r, version="1.0") if k % 10 == 0 else r
               for k, r in enumerate(traffic(conns=10, total=200, rate=1000))]
    ids = [i.decode() for i in xadd_all(redis_server.client(), "shop", records)]
    log = tmp_path / "target.jsonl"
    with logging_server(log) as srv:
        rc, _, err = run_replay("--source", redis_server.url, "--stream", "shop", "--mode", "max",
                                "--from", ids[50], "--to", ids[149], "--target", srv.url,
                                "--report", str(tmp_path / "r"))
    assert rc == 0, err[-3000:]
    sent = {dict(r["headers"])["X-Rec"]: r["version"] for r in read_log(log)}
    assert sent == {f"{r.conn}/{r.seq}": f"HTTP/{r.version}" for r in records[50:150]}
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["plan"]["records"] == 100
