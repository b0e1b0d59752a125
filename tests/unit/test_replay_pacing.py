"""The replay's schedule on a simulated clock (replayer/engine/pacing.py): the workers' real
pacing code, with time and the target simulated (tests/support/simclock.py), so each property
holds exactly. How late real sends are on this machine is ``make bench-replay``'s to measure."""

from __future__ import annotations

import pytest

from replayer.engine.dealer import Dealer
from replayer.engine.plan import Schedule
from replayer.engine.ramp import Ramp, RampMonitor, step_table
from replayer.engine.rewrite import Rules
from replayer.engine.shard import Shard
from replayer.engine.slo import parse_slo
from replayer.judge.aggregate import Totals
from replayer.judge.compare import Comparer
from replayer.judge.results import summarize
from tests.support.replay import traffic
from tests.support.simclock import SimClock, SimTarget

T0 = 5.0  # the start, on the simulated clock (workers wait for it, as for the master's start)
EXACT = 1e-6  # ms: equal up to float rounding


def replay(records, schedule: Schedule, workers: int, *, latency: float = 0.0005,
           loop: bool = False, duration: float | None = None, ramp: Ramp | None = None):
    """Replay ``records`` as a run would: the master's ``Dealer`` deals them (looping, with the
    ramp's due times), and ``workers`` workers (one ``Shard`` each) send what they were dealt
    against a target answering in ``latency`` s; every result, and what the target saw."""
    dealer = Dealer(Rules(), schedule, workers, ramp=ramp, loop=loop,
                    due_limit=duration if schedule.mode != "max" else None)
    shares: list[list] = [[] for _ in range(workers)]
    for w, step in dealer.passes(lambda: records):
        shares[w].append(step)
    clock = SimClock()
    outs: list[list] = [[] for _ in range(workers)]
    seen: list = []

    def worker(w: int):
        def run():
            shard = Shard(lambda: SimTarget(clock, latency=latency, sent=seen), T0,
                          outs[w].append, worker=w, comparer=Comparer(),
                          limit=lambda: duration, clock=clock)
            shard.add(shares[w])
            shard.end()
            return shard.crashed
        return run

    assert clock.run(*[worker(w) for w in range(workers)]) == [[]] * workers  # nothing crashed
    return [r for out in outs for r in out], seen


def fold(results, mode="recorded", ramp=None):
    return Totals.of(results, timed=mode != "max", step_of=ramp.step_of if ramp else None)


@pytest.mark.parametrize(("speed", "rate"), [(1, 1000), (4, 250)])
def test_recorded_mode_sends_on_time(speed, rate):
    """A recorded range at speed 1 and 4 (1,000 requests/s sent) on 2 workers: every request is
    sent exactly when due (lag 0), so the achieved rate is the recorded rate times the speed."""
    total = 3000
    results, seen = replay(traffic(conns=100, total=total, rate=rate),
                           Schedule("recorded", speed), 2)
    s = summarize(fold(results), mode="recorded")
    assert s["totals"]["sent"] == total and s["totals"]["errors"] == 0 and len(seen) == total
    assert max(abs(r.lag_ms) for r in results) < EXACT
    assert s["totals"]["rps"] == pytest.approx(rate * speed, rel=1e-9)
    assert sorted(r.idx for r in results) == list(range(total))


def test_slow_target_keeps_offered_rate():
    """A target answering in 100 ms gets the recorded 1,000 requests/s all the same: requests of
    other connections never wait for a slow answer, none waits for its own connection."""
    results, _ = replay(traffic(conns=300, total=3000, rate=1000), Schedule("recorded"), 2,
                        latency=0.1)
    s = summarize(fold(results), mode="recorded")
    assert s["totals"]["sent"] == 3000 and s["totals"]["errors"] == 0
    assert s["latency_ms"]["p50"] >= 100
    assert s["totals"]["rps"] == pytest.approx(1000, rel=1e-9)
    assert s["waited_for_connection"] == 0
    assert max(abs(r.lag_ms) for r in results) < EXACT


def test_busy_connection_waits_are_counted():
    """When one captured connection's next request is due before the slow answer to the last one
    arrived, it is sent the moment the answer arrives (one connection, in order) and the whole
    lag is that wait: the scheduler itself adds nothing."""
    results, seen = replay(traffic(conns=5, total=200, rate=200), Schedule("recorded"), 1,
                           latency=0.1)  # a connection's requests are due 25 ms apart
    s = summarize(fold(results), mode="recorded")
    assert s["totals"]["sent"] == 200
    assert s["waited_for_connection"] > 150
    assert s["lag_ms"]["p99"] > 100  # honest: total lag shows the waits
    assert max(abs(r.lag_ms - r.wait_ms) for r in results) < EXACT  # scheduler lag: none
    by_conn: dict[str, list] = {}
    for r in sorted(results, key=lambda r: r.idx):
        by_conn.setdefault(r.idx % 5, []).append(r)
    for rs in by_conn.values():  # each sent at max(due, previous answer)
        for prev, r in zip(rs, rs[1:], strict=False):
            assert r.sent == pytest.approx(max(r.due, prev.sent + 0.1), abs=1e-9)


def test_rps_mode_holds_rate():
    """--mode rps 500 looping a 2,000-request range for 30 s on 2 workers: exactly 15,000
    requests, at exactly 500 a second."""
    results, _ = replay(traffic(conns=50, total=2000, rate=1000), Schedule("rps", rate=500), 2,
                        loop=True, duration=30.0)
    s = summarize(fold(results), mode="rps")
    assert s["totals"]["errors"] == 0
    assert s["totals"]["sent"] == 15_000
    assert s["totals"]["rps"] == pytest.approx(500, rel=1e-9)
    assert max(r.due for r in results) < 30.0 and max(abs(r.lag_ms) for r in results) < EXACT


def test_ramp_offers_each_rate():
    """Ramp mode, 200, 225, ... 400 requests/s for 3 s each over 2 workers, looping a 1,000-request
    range: each step's requests go out at exactly its rate, and nothing is due after the ramp."""
    ramp = Ramp(200, 25, 400, 3.0)
    results, _ = replay(traffic(conns=150, total=1000, rate=1000), Schedule("rps", rate=200), 2,
                        loop=True, duration=ramp.duration, ramp=ramp)
    monitor = RampMonitor(ramp, parse_slo("p95<200ms"))
    totals = fold(results, ramp=ramp)
    monitor.finish(totals, ramp.duration)
    steps = step_table(totals, ramp, monitor)
    assert [st["held"] for st in steps] == [True] * len(ramp.rates)
    assert [st["achieved_rps"] for st in steps] == [st["offered_rps"] for st in steps]
    assert [st["sent"] for st in steps] == list(ramp.counts)
    assert len(results) == ramp.total and max(abs(r.lag_ms) for r in results) < EXACT
