"""A replay against a server that answers gzip compares the answers as their JSON content."""

from __future__ import annotations

import gzip
import json

import orjson

from sidecar.contract.record import Record
from tests.support.replay import T0_NS, logging_server, run_replay, write_jsonl


def _recording(n: int) -> list[Record]:
    """``n`` GETs, each answered with gzip JSON as the logging server answers, an old ``ts``."""
    out = []
    for k in range(n):
        target = f"/items/{k}"
        answer = {"ok": True, "target": target, "method": "GET",
                  "ts": f"2026-01-01T00:00:{k:02d}.000000000Z"}
        body = gzip.compress(orjson.dumps(answer), mtime=k)
        out.append(Record(ts_ns=T0_NS + k * 10_000_000, conn=f"c{k % 4}", seq=k // 4,
                          client="10.0.0.1:1", method="GET", target=target, version="1.1",
                          headers=[("Host", "x"), ("Accept-Encoding", "gzip")], status=200,
                          resp_headers=[("Content-Type", "application/json"),
                                        ("Content-Encoding", "gzip")],
                          resp_body=body, resp_body_len=len(body), latency_us=500))
    return out


def test_gzip_answers_differing_in_an_ignored_field_match(tmp_path):
    """20 gzip JSON answers that differ only in ``ts``, replayed with --ignore '$.ts': body
    mismatch rate 0 (it was 1.0 when the compressed bytes were compared)."""
    path = write_jsonl(tmp_path / "rec.jsonl", _recording(20))
    with logging_server(tmp_path / "log.jsonl", "--gzip", "--ts") as srv:
        rc, _out, err = run_replay("--source", str(path), "--target", srv.url, "--workers", "1",
                                   "--report", str(tmp_path / "r"), "--ignore", "$.ts")
        rc2, _out2, err2 = run_replay("--source", str(path), "--target", srv.url, "--workers",
                                      "1", "--report", str(tmp_path / "r2"))
    totals = json.loads((tmp_path / "r" / "summary.json").read_text())["totals"]
    assert totals["bodies_compared"] == 20, err[-2000:]
    assert totals["body_mismatch_rate"] == 0, err[-2000:]
    without = json.loads((tmp_path / "r2" / "summary.json").read_text())["totals"]
    assert without["body_mismatch_rate"] == 1.0, err2[-2000:]  # ts does differ in every answer
