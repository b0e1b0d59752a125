"""Thresholds files and the verdict; summaries of raw results."""

from __future__ import annotations

import pytest

from replayer.judge.aggregate import Totals
from replayer.judge.result import Result
from replayer.judge.results import summarize
from replayer.judge.verdict import ThresholdsError, evaluate, parse_thresholds


def result(i, endpoint="GET /a", status=200, latency=10.0, error=None, status_ok=True,
           body_ok=True, sent=None):
    sent = i * 0.01 if sent is None else sent
    return Result(idx=i, worker=0, due=sent, sent=sent, lag_ms=0.5, wait_ms=0.0,
                  latency_ms=latency, status=status, error=error, endpoint=endpoint,
                  status_ok=status_ok, body_ok=body_ok, diffs=[], iteration=0)


def test_summary_numbers():
    raw = [result(i) for i in range(100)] + [result(100 + i, "GET /b", 500, status_ok=False,
                                                    body_ok=None) for i in range(25)]
    s = summarize(Totals.of(raw), mode="recorded")
    assert s["totals"]["sent"] == 125 and s["totals"]["errors"] == 25
    assert s["totals"]["error_rate"] == 0.2
    assert s["endpoints"]["GET /b"]["status_mismatch_rate"] == 1.0
    assert s["latency_ms"]["p95"] == 10.0
    assert s["totals"]["rps"] == pytest.approx(100, rel=0.01)
    assert sum(s["series"]["rps"]) * s["series"]["bucket_s"] == pytest.approx(125)


def test_verdict_catches_one_bad_endpoint():
    """An endpoint failing alone fails the verdict even when the whole run is under the limit."""
    raw = [result(i) for i in range(990)] + [result(990 + i, "GET /b", 500, status_ok=False,
                                                    body_ok=None) for i in range(30)]
    checks = evaluate(parse_thresholds('{"max_error_rate": 0.05, "max_p95_ms": 50}'),
                      summarize(Totals.of(raw), mode="recorded"))
    failing = [c for c in checks if not c.ok]
    assert [(c.metric, c.scope) for c in failing] == [("error_rate", "GET /b")]
    assert failing[0].line() == "FAIL error_rate [GET /b] = 1 (limit <= 0.05)"


@pytest.mark.parametrize("text", ["", "{", "[]", "{}", '{"max_p95": 1}', '{"p95_ms": 1}',
                                  '{"max_p95_ms": "fast"}', '{"max_p95_ms": -1}',
                                  '{"per_endpoint": 1}'])
def test_malformed_thresholds(text):
    with pytest.raises(ThresholdsError):
        parse_thresholds(text)
