"""--baseline: noise learned from two baseline runs lets an unchanged candidate with timestamp
and random-id fields pass without --ignore, while a candidate that changes a real field fails."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.support.replay import logging_server, run_replay, traffic, write_jsonl

pytestmark = pytest.mark.slow


def answer(k: int, method: str, path: str) -> bytes:
    return orjson.dumps({"ok": True, "target": path, "method": method})


def test_noise_learned_from_baseline(tmp_path):
    """Baseline and candidates add {now, rid} to each answer: the two baseline runs mark $.now
    and $.rid noisy on every endpoint (listed in summary.json), the unchanged candidate passes
    with no --ignore, and one answering "ok": "no" fails on $.ok with exit 1."""
    path = write_jsonl(tmp_path / "rec.jsonl", traffic(
        conns=20, total=300, rate=500, resp_body=answer,
        paths=lambda k: f"/items/{k % 30}" if k % 3 else f"/users/u{k % 9}/cart"))
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps({"max_body_mismatch_rate": 0.0,
                                      "max_status_mismatch_rate": 0.0}))
    summaries, codes = [], []
    with logging_server(tmp_path / "b.jsonl", "--noise") as base:
        for n, extra in enumerate([(), ("--set-field", "ok=no")]):
            with logging_server(tmp_path / f"c{n}.jsonl", "--noise", *extra) as cand:
                rc, _, err = run_replay(
                    "--source", str(path), "--target", cand.url, "--baseline", base.url,
                    "--mode", "max", "--workers", "1", "--thresholds", str(thresholds),
                    "--report", str(tmp_path / f"r{n}"))
            assert rc in (0, 1), err[-3000:]
            codes.append(rc)
            summaries.append(json.loads((tmp_path / f"r{n}" / "summary.json").read_text()))
    unchanged, changed = summaries
    assert codes == [0, 1]
    assert unchanged["noise"]["paths"] == {"GET /items/:id": ["$.now", "$.rid"],
                                           "GET /users/:id/cart": ["$.now", "$.rid"],
                                           "POST /items/:id": ["$.now", "$.rid"],
                                           "POST /users/:id/cart": ["$.now", "$.rid"]}
    assert unchanged["noise"]["compared"] == 300
    assert unchanged["totals"]["bodies_compared"] == 300
    assert unchanged["totals"]["body_mismatch_rate"] == 0
    assert changed["totals"]["body_mismatch_rate"] == 1
    assert set(changed["endpoints"]["GET /items/:id"]["diff_paths"]) == {"$.ok"}
    html = (tmp_path / "r0" / "report.html").read_text()
    assert "$.rid" in html and "learned" in html.lower()
