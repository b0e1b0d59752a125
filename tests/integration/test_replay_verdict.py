"""Thresholds turn a replay into a verdict: a candidate answering 500 on one endpoint or 3x
slower fails with the failing lines in the report; an unchanged one passes, noisy fields too."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.support.replay import logging_server, run_replay, traffic, write_jsonl

pytestmark = pytest.mark.slow

THRESHOLDS = {"max_p95_ms": 20, "max_error_rate": 0.01, "max_status_mismatch_rate": 0.01,
              "max_body_mismatch_rate": 0.0, "min_endpoint_requests": 20}


def paths(k: int) -> str:
    return f"/articles/a{k % 7}/summary" if k % 10 == 0 else f"/items/{k % 50}"


def answer(k: int, method: str, path: str) -> bytes:
    """What the logging server answers (without --noise): the recorded response bodies."""
    return orjson.dumps({"ok": True, "target": path, "method": method})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verdict")
    path = write_jsonl(folder / "rec.jsonl",
                       traffic(conns=40, total=1000, rate=500, paths=paths, resp_body=answer))
    (folder / "thresholds.json").write_text(json.dumps(THRESHOLDS))
    return path, folder / "thresholds.json"


def judge(tmp_path, recorded, *server_args, ignore=("$.now", "$.rid")):
    path, thresholds = recorded
    with logging_server(tmp_path / "log.jsonl", *server_args) as srv:
        rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--workers", "2",
                                "--thresholds", str(thresholds), "--report", str(tmp_path / "r"),
                                *[x for p in ignore for x in ("--ignore", p)])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    return rc, summary, (tmp_path / "r" / "junit.xml").read_text(), err


def failing(summary) -> list[str]:
    return [c["line"] for c in summary["verdict"]["checks"] if not c["ok"]]


def test_unchanged_candidate_passes_with_noisy_fields(tmp_path, recorded):
    """Same answers plus a timestamp and a random id per answer, 5 ms each: pass, exit 0."""
    rc, s, junit, err = judge(tmp_path, recorded, "--noise", "--delay", "0.005")
    assert rc == 0, failing(s) or err[-2000:]
    assert s["verdict"]["passed"] and s["totals"]["body_mismatch_rate"] == 0
    assert s["totals"]["bodies_compared"] == 1000
    assert 'failures="0"' in junit


def test_noise_without_ignore_is_a_body_mismatch(tmp_path, recorded):
    """The same noisy candidate without --ignore: every body differs, in $.now and $.rid."""
    rc, s, _, _ = judge(tmp_path, recorded, "--noise", ignore=())
    assert rc == 1
    assert set(s["endpoints"]["GET /items/:id"]["diff_paths"]) == {"$.now", "$.rid"}


def test_500_on_one_endpoint_fails(tmp_path, recorded):
    """500 on the summary endpoint only (10 % of traffic): exit 1, that endpoint named."""
    rc, s, junit, _ = judge(tmp_path, recorded, "--fail-prefix", "/articles")
    assert rc == 1
    lines = failing(s)
    assert "FAIL error_rate [GET /articles/:id/summary] = 1 (limit <= 0.01)" in lines
    assert any(line.startswith("FAIL status_mismatch_rate [GET /articles/:id/summary]")
               for line in lines)
    assert not any("/items/" in line for line in lines)
    assert "<failure" in junit
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Verdict: FAIL" in html and "GET /articles/:id/summary" in html


def test_3x_slower_fails(tmp_path, recorded):
    """Every answer 3 x the 10 ms of a passing candidate (30 ms): the p95 limit fails."""
    rc, s, _, _ = judge(tmp_path, recorded, "--delay", "0.03")
    assert rc == 1
    assert s["latency_ms"]["p95"] >= 30
    assert any(line.startswith("FAIL p95_ms [all]") for line in failing(s))
