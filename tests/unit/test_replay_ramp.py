"""Ramp mode without a network: SLO parsing, the ramp's due times, judging steps as results
arrive (unanswered requests count as slow), and the capacity."""

from __future__ import annotations

import pytest

from replayer.engine.ramp import Ramp, RampMonitor, step_table
from replayer.engine.slo import SloError, parse_slo
from replayer.judge.aggregate import Totals
from replayer.judge.result import Result


def test_slo_parses_latency_and_errors():
    """Latency limits come out in ms, error limits as a share."""
    slo = parse_slo("p95<200ms, errors<1%,p99<0.5s,max<2s,errors<0.05")
    assert [(o.metric, o.limit) for o in slo] == [
        ("p95", 200), ("errors", 0.01), ("p99", 500), ("max", 2000), ("errors", 0.05)]


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"), ("p95<200", "needs a unit"), ("p95>200ms", "METRIC<LIMIT"),
    ("p42<1ms", "unknown metric"), ("errors<5ms", "percentage"), ("errors<200%", "at most"),
    ("p95<0ms", "more than 0"), ("p95<200ms,", "METRIC<LIMIT"),
])
def test_malformed_slo_says_what_to_write(text, says):
    """Each malformed SLO raises SloError with a message that names the problem."""
    with pytest.raises(SloError, match=says):
        parse_slo(text)


def test_ramp_due_times_encode_the_rising_rate():
    """Step i holds rate start + i * step for step_s seconds; past the last step nothing is due."""
    r = Ramp(100, 50, 220, 2.0)
    assert r.rates == (100, 150, 200) and r.counts == (200, 300, 400)
    assert r.due(0) == 0 and r.due(199) == pytest.approx(1.99)
    assert r.due(200) == 2.0 and r.due(201) == pytest.approx(2 + 1 / 150)
    assert r.due(500) == 4.0 and r.due(r.total) == float("inf")
    assert r.duration == 6.0 and r.step_of(3.9) == 1 and r.step_of(99) == 2


def res(due, latency=5.0, status=200, error=None, wait=0.0):
    return Result(idx=0, worker=0, due=due, sent=due, lag_ms=0.5, wait_ms=wait,
                  latency_ms=latency, status=status, error=error, endpoint="GET /",
                  status_ok=True, body_ok=True, diffs=[], iteration=0)


def fold(results, ramp):
    return Totals.of(results, step_of=ramp.step_of)


def test_monitor_stops_at_first_broken_step():
    """Steps are judged once over plus the grace time; the first slow one stops the run, and the
    capacity is the rate of the last step that held."""
    ramp = Ramp(10, 10, 50, 1.0)
    lines = []
    mon = RampMonitor(ramp, parse_slo("p95<100ms,errors<10%"),
                      log=lambda event, **kw: lines.append(kw))
    results = [res(k / 10) for k in range(10)] + [res(1 + k / 20) for k in range(20)]
    results += [res(2 + k / 30, latency=300) for k in range(30)]
    totals = fold(results, ramp)
    assert mon.tick(totals, 1.5) is None and len(mon.verdicts) == 0  # step 0 not yet judged
    assert mon.tick(totals, 2.0 + mon.grace) is None and len(mon.verdicts) == 2
    stop = mon.tick(totals, 3.0 + mon.grace)
    assert stop == 3.0 + mon.grace
    assert [v.held for v in mon.verdicts] == [True, True, False] and mon.capacity == 20
    assert lines[-1]["failing"] == ["p95<100ms: 300.0ms"]
    mon.finish(totals, 10.0)  # nothing judged after a broken step
    assert len(mon.verdicts) == 3
    rows = step_table(totals, ramp, mon)
    assert [r["achieved_rps"] for r in rows] == [10, 20, 30] and rows[2]["p95_ms"] == 300


def test_unanswered_requests_count_as_slow():
    """A step with answers missing when judged breaks a latency SLO: they waited longer than it."""
    ramp = Ramp(100, 100, 100, 1.0)
    mon = RampMonitor(ramp, parse_slo("p95<100ms"))
    answered = [res(k / 100) for k in range(90)]  # 10 of 100 still out
    mon.tick(fold(answered, ramp), 1.0 + mon.grace)
    assert not mon.verdicts[0].held and mon.capacity is None


def test_wait_for_the_connection_counts_as_latency_and_errors_break():
    """Latency for the SLO includes the wait for the previous answer; 5xx answers are errors."""
    ramp = Ramp(10, 10, 20, 1.0)
    mon = RampMonitor(ramp, parse_slo("p50<50ms,errors<5%"))
    step0 = [res(k / 10, latency=10, wait=60) for k in range(10)]
    mon.finish(fold(step0, ramp), 2.0)
    assert not mon.verdicts[0].held
    mon = RampMonitor(ramp, parse_slo("errors<5%"))
    mon.finish(fold([res(k / 10, status=503 if k == 0 else 200) for k in range(10)], ramp), 2.0)
    assert not mon.verdicts[0].held and mon.verdicts[0].values["errors"] == 0.1
