"""The report's correlation section (replayer/judge/correlation_report.py): workers' counts
summed per endpoint, mismatches of requests with an unresolved dependency explained and the
others listed as unexplained; thresholds max_unresolved and max_unexplained; the flags."""

from __future__ import annotations

import pytest

from replayer.judge.correlation_report import html_section, section
from replayer.judge.html import _table
from replayer.judge.result import Result
from replayer.judge.verdict import evaluate, parse_thresholds
from replayer.replay.options import parse


def result(i, endpoint, status=200, status_ok=True, body_ok=True, diffs=()):
    return Result(idx=i, worker=0, due=0.0, sent=0.0, lag_ms=0.0, wait_ms=0.0, latency_ms=1.0,
                  status=status, error=None, endpoint=endpoint, status_ok=status_ok,
                  body_ok=body_ok, diffs=list(diffs), iteration=0)


def worker(ep_counts, unresolved_idx=(), **unresolved):
    return {"endpoints": {ep: {"carried": c, "waited": 1, "followed": 0, "wait_ms_total": 5.0,
                               "wait_ms_max": 5.0, "unresolved": u, "made": 0, "not_made": 0,
                               "explained": 1} for ep, (c, u) in ep_counts.items()},
            "unresolved": {"producer_failed": 0, "not_in_answer": 0, "timed_out": 0,
                           "order_timed_out": 0, **unresolved},
            "unresolved_idx": list(unresolved_idx), "times_shifted": 0,
            "jwt": {"resigned": 0, "unsigned": 2}, "relayed_out": 0, "relayed_in": 1,
            "relay_ms": [3.0], "evicted": 0}


def test_section_sums_workers_and_separates_explained_mismatches():
    """Two workers' counts add up per endpoint; a 401 of a request whose token was unresolved
    is explained, a 500 and a body diff elsewhere are unexplained (listed with examples)."""
    s = section([worker({"GET /a": (3, 1)}, [2], producer_failed=1),
                 worker({"GET /a": (2, 0), "PUT /b": (1, 0)})],
                [result(1, "GET /a"), result(2, "GET /a", 401, status_ok=False, body_ok=None),
                 result(3, "PUT /b", 500, status_ok=False, body_ok=None),
                 result(4, "GET /a", body_ok=False, diffs=["$.qty"])],
                {"bindings": 6}, enabled=True)
    assert (s["carried"], s["waited"], s["unresolved"], s["relayed"]) == (6, 3, 1, 2)
    assert s["endpoints"]["GET /a"]["carried"] == 5
    assert s["endpoints"]["GET /a"]["wait_ms_max"] == 5.0
    assert s["unexplained"]["count"] == 2
    assert s["unexplained"]["endpoints"] == {"PUT /b": {"status": {500: 1}, "body": 0},
                                             "GET /a": {"status": {}, "body": 1}}
    assert s["jwt"] == {"resigned": 0, "unsigned": 4}
    assert "2 mismatches unexplained" in html_section({"correlation": s}, _table)


def test_thresholds_on_unresolved_and_unexplained():
    """max_unresolved and max_unexplained are run-wide counts read from the section."""
    s = {"correlation": section([worker({"GET /a": (1, 2)}, [1, 2], timed_out=2)], [], None,
                                enabled=True),
         "endpoints": {}}
    checks = evaluate(parse_thresholds('{"max_unresolved": 1, "max_unexplained": 0}'), s)
    assert [(c.metric, c.value, c.ok) for c in checks] == [("unresolved", 2, False),
                                                           ("unexplained", 0, True)]


def test_correlation_flags(tmp_path, capsys):
    """On by default; --no-correlate, --shift-time and a readable --jwt-key are taken; an
    unreadable key or two keys stop the command before any work (exit 2)."""
    base = ["--source", "x.jsonl", "--target", "http://t"]
    assert parse(base).correlate is True
    (tmp_path / "k").write_bytes(b"secret")
    o = parse([*base, "--no-correlate", "--shift-time", "--jwt-key", str(tmp_path / "k")])
    assert (o.correlate, o.shift_time, o.jwt_key_file) == (False, True, str(tmp_path / "k"))
    for extra, message in ((["--jwt-key", str(tmp_path / "none")], "--jwt-key"),
                           (["--jwt-key", "a", "--jwt-key-env", "B"], "give the JWT key once")):
        with pytest.raises(SystemExit) as e:
            parse([*base, *extra])
        assert e.value.code == 2 and message in capsys.readouterr().err
