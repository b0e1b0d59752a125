"""The streaming replay's bounds, on a simulated clock: the master's look-ahead and credits
(Feeder), the loop's passes (Dealer), and the bounded aggregates (Summary, Totals)."""

from __future__ import annotations

import pytest

from replayer.engine.dealer import Dealer
from replayer.engine.feeder import Feeder
from replayer.engine.plan import Schedule
from replayer.engine.rewrite import Rules
from replayer.judge.aggregate import Aggregator, Totals
from replayer.judge.result import Result
from replayer.judge.summary import EXAMPLES, MAX_KINDS, OTHER, Summary
from tests.support.replay import traffic
from tests.support.simclock import SimClock


def _deal(records, schedule, workers=2, **kw):
    dealer = Dealer(Rules(), schedule, workers, **kw)
    return dealer, dealer.passes(lambda: records)


def test_timed_feeder_sends_no_step_before_it_is_due_within_the_look_ahead():
    """Recorded mode, 3,000 requests over 10 s: every step reaches its worker exactly once, in
    order, no earlier than look-ahead (1 s) before it is due and never after it is due."""
    clock = SimClock()
    _, items = _deal(traffic(conns=50, total=3000, rate=300), Schedule("recorded"))
    got: list[tuple[float, int, object]] = []
    feeder = Feeder(items, lambda w, steps: got.extend((clock.now(), w, s) for s in steps), 2,
                    t0=1.0, timed=True, lookahead_s=1.0, clock=clock)
    clock.run(feeder.run)
    assert feeder.done and sorted(s.idx for _, _, s in got) == list(range(3000))
    for sent_at, _, s in got:
        assert s.due - 1.0 - 1e-9 <= sent_at - 1.0 <= s.due
    assert max(feeder.dealt) > 0 and sum(feeder.dealt) == 3000


def test_max_feeder_never_lets_a_worker_hold_more_than_its_credit():
    """Max mode with a credit of 100: a worker that finishes 20 steps every 10 ms never holds
    more than 100 dealt and unfinished, and gets all of its share, each step once."""
    clock = SimClock()
    _, items = _deal(traffic(conns=30, total=2000, rate=1000), Schedule("max"))
    held = [0, 0]
    peak = [0, 0]
    got: list = []
    feeder: Feeder

    def send(w, steps):
        held[w] += len(steps)
        peak[w] = max(peak[w], held[w])
        got.extend(steps)

    def worker(w):
        def run():
            while not (feeder.done and held[w] == 0):
                n = min(20, held[w])
                held[w] -= n
                feeder.add_finished(w, n)
                clock.sleep(0.01)
        return run

    feeder = Feeder(items, send, 2, t0=0.0, timed=False, credit=100, clock=clock)
    clock.run(feeder.run, worker(0), worker(1))
    assert max(peak) <= 100 and sorted(s.idx for s in got) == list(range(2000))


def test_loop_passes_reread_the_source_and_keep_connections_on_their_worker():
    """--loop in rps mode for 3 passes of 100 requests: pass i is due i x span later, every
    connection stays on the worker it was dealt to first, and the correlation hook sees each
    record of the first pass only."""
    seen = []
    records = traffic(conns=7, total=100, rate=1000)
    dealer, items = _deal(records, Schedule("rps", rate=100), loop=True, due_limit=3.0,
                          on_record=seen.append)
    steps = list(items)
    assert len(steps) == 300 and dealer.span == 1.0 and dealer.planned == 100
    assert [s.due for _, s in steps] == pytest.approx([k / 100 for k in range(300)])
    assert [s.iteration for _, s in steps] == [k // 100 for k in range(300)]
    owner = {}
    for w, s in steps:
        assert owner.setdefault(s.conn, w) == w
    assert seen == records


def test_max_mode_loop_with_a_duration_keeps_passing_until_the_feeder_stops():
    """--mode max --loop --duration: every step is due at 0, so the passes go on until the
    Feeder's time limit ends the dealing (they stopped after one pass: a 5,000-request range
    looped for 10 s sent 5,000 requests in 0.3 s); without --duration, one pass."""
    clock = SimClock()
    records = traffic(conns=5, total=50, rate=1000)
    dealer, items = _deal(records, Schedule("max"), loop=True, time_limited=True)
    sent = []

    def send(w, steps):
        sent.extend(steps)
        feeder.add_finished(w, len(steps))
        clock.sleep(0.01)  # a batch takes the workers 10 ms

    feeder = Feeder(items, send, 2, t0=0.0, timed=False, time_limit=1.0, clock=clock)
    clock.run(feeder.run)
    assert feeder.done and len(sent) > 5 * len(records) and max(s.iteration for s in sent) >= 5
    once, items = _deal(records, Schedule("max"), loop=True)
    assert len(list(items)) == len(records)


def test_summary_tables_are_capped():
    """A thousand different error texts and mismatches keep MAX_KINDS kinds (the rest counted
    under OTHER) and the first EXAMPLES examples; the counts stay exact."""
    s = Summary()
    for i in range(1000):
        s.add(Result(idx=i, worker=0, due=0.0, sent=0.0, lag_ms=0.0, wait_ms=0.0, latency_ms=1.0,
                     status=0, error=f"refused {i}", endpoint="GET /", status_ok=False,
                     body_ok=None, diffs=[], iteration=0))
        s.add(Result(idx=i, worker=0, due=0.0, sent=0.0, lag_ms=0.0, wait_ms=0.0, latency_ms=1.0,
                     status=404, error=None, endpoint="GET /", status_ok=False,
                     body_ok=None, diffs=[], iteration=0))
    assert len(s.error_kinds) == MAX_KINDS + 1 and s.error_kinds[OTHER] == 1000 - MAX_KINDS
    assert sum(s.error_kinds.values()) == 1000 == s.errors
    assert len(s.examples) == EXAMPLES and s.status_mismatches == 1000


def test_a_long_run_keeps_a_bounded_series():
    """Shipments covering 10,000 s (a soak) keep at most max_buckets series buckets, of a width
    that doubled as needed, with every request still counted."""
    totals = Totals(max_buckets=100)
    for start in range(0, 10_000, 50):
        agg = Aggregator()
        for sec in range(start, start + 50):
            agg.add(Result(idx=sec, worker=0, due=float(sec), sent=sec + 0.5, lag_ms=0.1,
                           wait_ms=0.0, latency_ms=2.0, status=200, error=None, endpoint="GET /",
                           status_ok=True, body_ok=True, diffs=[], iteration=0))
        totals.merge(agg.take())
    assert len(totals.series) <= 100 and totals.bucket_s == 128
    assert sum(s.count for s in totals.series.values()) == 10_000 == totals.sent
    assert sum(totals.due.values()) == 10_000


def test_progress_has_an_eta_for_a_finite_range(tmp_path):
    """The progress line's ETA comes from the planned count when it is known, else from how much
    of an exported file was read (its bytes, compressed or not)."""
    from replayer.engine.progress import Progress
    from replayer.source.feed import Feed
    from tests.support.replay import write_jsonl

    totals = Totals()
    totals.finished = 250
    lines = []
    p = Progress(None, lambda: 1000, lambda: None, lines.append)
    assert p.snapshot(totals, 10.0, 5.0)["eta_s"] == 30.0  # a quarter in 10 s: 30 s to go
    feed = Feed(str(write_jsonl(tmp_path / "r.jsonl", traffic(conns=3, total=4000, rate=100))))
    read = iter(feed.records())
    for _ in range(1000):  # the file is read ~2 s of capture time ahead (the reorder window)
        next(read)
    share = feed.fraction()
    assert 0.25 < share < 0.35
    p = Progress(None, lambda: None, feed.fraction, lines.append)
    assert p.snapshot(totals, 10.0, 5.0)["eta_s"] == round(10.0 * (1 - share) / share, 1)


def test_a_workers_raw_counts_are_the_ddsketch_of_the_same_values():
    """A worker's Raw histogram crosses the wire as the DDSketch of the same values would: every
    percentile the master reads from it is the library's, for positive, zero and negative ones."""
    import random

    from replayer.judge import sketch

    rnd = random.Random(3)
    raw, ref = sketch.Raw(), sketch.new()
    for v in [rnd.lognormvariate(0, 2) for _ in range(5000)] + [0.0, -1.5, -0.001]:
        raw.add(v)
        ref.add(v)
    got, want = sketch.from_wire(raw.to_wire()), sketch.from_wire(sketch.to_wire(ref))
    assert got.count == want.count and got._sum == pytest.approx(want._sum)
    for p in (0.1, 1, 50, 90, 99, 99.9, 100):
        assert sketch.quantile(got, p) == sketch.quantile(want, p)


def test_feeder_deals_nothing_after_the_duration():
    """--duration 1 s, rps mode: once the clock passes t0 + 1 s nothing more is dealt (it could
    not be sent), even though the range holds steps due later and the look-ahead is 1 s."""
    clock = SimClock()
    _, items = _deal(traffic(conns=10, total=1000, rate=100), Schedule("rps", rate=100))
    got: list = []
    feeder = Feeder(items, lambda w, steps: got.extend(steps), 2, t0=0.0, timed=True,
                    lookahead_s=1.0, time_limit=1.0, clock=clock)
    clock.run(feeder.run)
    assert feeder.done and max(s.due for s in got) <= 2.0 and len(got) < 250


def test_the_dealer_forgets_connections_long_unseen(monkeypatch):
    """Over many short connections the dealer's table of connections stays bounded: one unseen
    for FORGET_AFTER steps is forgotten (and counted); every step is still dealt once, and a
    connection keeps its worker while it is seen."""
    import replayer.engine.dealer as dealer_mod

    monkeypatch.setattr(dealer_mod, "FORGET_AFTER", 50)
    monkeypatch.setattr(dealer_mod, "_SWEEP_EVERY", 10)
    records = [r for k in range(100) for r in traffic(conns=1, total=5, rate=100, seed=k)]
    for k, r in enumerate(records):  # 100 connections of 5 requests, one after the other
        r.conn, r.ts_ns = f"c{k // 5}", 1_700_000_000_000_000_000 + k * 10_000_000
    dealer, items = _deal(records, Schedule("max"))
    steps = list(items)
    assert len(steps) == 500 and len(dealer.worker_of) <= 60 and dealer.forgotten >= 40
    owner = {}
    for w, s in steps:
        assert owner.setdefault(s.conn, w) == w
    assert dealer.connections == 100
