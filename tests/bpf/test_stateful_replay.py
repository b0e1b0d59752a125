"""The stateful API captured through the real probe under mixed multi-user traffic, then replayed
with ``rewind-replay`` against a FRESH instance: with correlation the candidate's ids, tokens,
ETags, CSRF tokens and cookies are carried and nothing mismatches; without it the replay meets
the 401/403/404/412s correlation removes; a regressed build still fails the verdict."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.bpf.test_stateful import ROUNDS, USERS, capture_stateful
from tests.support.replay import run_replay, write_jsonl
from tests.support.servers import stateful_api

THRESHOLDS = {"max_status_mismatch_rate": 0.0, "max_body_mismatch_rate": 0.0,
              "max_error_rate": 0.0, "max_unresolved": 0}
IGNORE = ["--ignore", "$..created_at"]  # a server clock, not state: the only field left out


@pytest.fixture(scope="module")
def recording(redis_srv, tmp_path_factory):
    """One capture of the stateful API under mixed multi-user traffic, exported to a file."""
    folder = tmp_path_factory.mktemp("stateful-replay")
    records = capture_stateful(redis_srv, folder, "stateful-replay")
    (folder / "thresholds.json").write_text(json.dumps(THRESHOLDS))
    return write_jsonl(folder / "rec.jsonl", records), folder


def replay(recording, tmp_path, *args: str, regression: bool = False) -> tuple[int, dict, str]:
    path, folder = recording
    with stateful_api(regression=regression) as fresh:
        code, _out, err = run_replay(
            "--source", str(path), "--target", fresh.url, "--report", str(tmp_path / "r"),
            "--thresholds", str(folder / "thresholds.json"), *IGNORE, *args)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    return code, summary, err


def _codes(summary: dict) -> Counter:
    return Counter({int(k): v for k, v in summary["status_codes"].items()})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_replay_with_correlation_matches_on_a_fresh_instance(recording, tmp_path, workers):
    """As recorded, 1 and 2 workers: every learned value is carried, and there are zero status
    mismatches, zero body diffs and nothing unresolved; with 2 workers values made on one worker
    were used on the other (relayed through the master)."""
    code, s, err = replay(recording, tmp_path, "--workers", workers)
    c = s["correlation"]
    assert code == 0, (s.get("verdict"), c, err[-3000:])
    assert s["totals"]["status_mismatch_rate"] == 0 and s["totals"]["body_mismatch_rate"] == 0
    assert c["unresolved"] == 0 and c["unexplained"]["count"] == 0, c
    assert c["carried"] > 0 and c["learned"]["bindings"] == c["carried"], c
    assert c["explained"] > 0  # recorded answers rewritten to expect the candidate's values
    if workers == "2":
        assert c["relayed"] > 0 and c["learned"]["relayed_producers"] == c["relayed"], c


def test_max_mode_requests_wait_for_their_values(recording, tmp_path):
    """As fast as possible on 2 workers the connections race each other: requests wait for the
    answers that make their values and for the same user's earlier answers on other connections
    (a GET after a PUT, a DELETE after a GET), on this worker or the other, and the replay still
    matches: no status mismatch, no body diff, nothing unresolved."""
    code, s, err = replay(recording, tmp_path, "--mode", "max", "--workers", "2")
    c = s["correlation"]
    assert code == 0, (s.get("verdict"), c, err[-3000:])
    assert c["waited"] > 0 and c["followed"] > 0 and c["relayed"] > 0, c
    assert c["unresolved"] == 0 and c["order_timed_out"] == 0, c
    assert s["totals"]["status_mismatch_rate"] == 0 and s["totals"]["body_mismatch_rate"] == 0
    assert c["carried"] == c["learned"]["bindings"], c


def test_replay_without_correlation_shows_what_it_removes(recording, tmp_path):
    """--no-correlate: the recorded bearer tokens meet 401 on every JSON call, the recorded
    session cookies and CSRF tokens 403 on the form posts and 303 (back to the login) on the
    pages, so the same range fails the same thresholds."""
    code, s, _err = replay(recording, tmp_path, "--no-correlate")
    codes = _codes(s)
    assert code != 0
    assert codes[401] >= USERS * ROUNDS * 5 and codes[403] >= USERS * ROUNDS, codes
    assert s["totals"]["status_mismatch_rate"] > 0.9, s["totals"]
    assert s["correlation"]["enabled"] is False


def test_regressed_build_still_fails_the_verdict(recording, tmp_path):
    """With correlation on, the regressed build (wrong qty, 500 on notes) fails the verdict: the
    carried values make the real regressions stand out as unexplained mismatches."""
    code, s, _err = replay(recording, tmp_path, "--mode", "max", regression=True)
    c = s["correlation"]
    assert code != 0
    eps = s["endpoints"]
    assert eps["GET /api/orders/:id"]["body_mismatch_rate"] > 0
    assert eps["GET /web/notes/:id"]["status_mismatch_rate"] == 1.0
    assert c["unresolved"] == 0
    assert {"GET /api/orders/:id", "GET /web/notes/:id"} <= set(c["unexplained"]["endpoints"]), c
