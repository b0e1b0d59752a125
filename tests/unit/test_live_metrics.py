"""The replay's live metrics (replayer.engine.live_metrics): summaries folded into a real
Prometheus histogram per endpoint, counters and progress, read back from the registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from replayer.engine.live_metrics import LATENCY_BUCKETS, LiveMetrics, bucket_counts_of


def test_buckets_span_1ms_to_30s_in_order():
    """Bounds rise strictly from 1 ms to 30 s."""
    assert LATENCY_BUCKETS[0] == 0.001 and LATENCY_BUCKETS[-1] == 30.0
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))


def test_bucket_counts_are_per_bound_not_cumulative():
    """A latency equal to a bound is in that bound's bucket (le); above 30 s goes to +Inf."""
    c = bucket_counts_of([0.001, 0.0011, 0.0025, 31.0, 0.2])
    assert len(c) == len(LATENCY_BUCKETS) + 1
    assert c[0] == 1 and c[1] == 2 and c[LATENCY_BUCKETS.index(0.25)] == 1 and c[-1] == 1
    assert sum(c) == 5


def test_summaries_fold_into_a_cumulative_histogram_and_counters():
    """Two summaries for one endpoint, one for another: _bucket is cumulative, _count and _sum
    add up, requests and errors are counted per endpoint, lag and progress are gauges."""
    reg = CollectorRegistry()
    live = LiveMetrics(reg)
    live.add("GET /a", requests=3, errors=1, bucket_counts=bucket_counts_of([0.002, 0.02, 0.5]),
             latency_sum=0.522, lag_seconds=0.01)
    live.add("GET /a", requests=1, errors=0, bucket_counts=bucket_counts_of([40.0]),
             latency_sum=40.0, lag_seconds=0.002)
    live.add("POST /b", requests=2, errors=0, bucket_counts=bucket_counts_of([0.001, 0.001]),
             latency_sum=0.002)
    live.progress(6, 100)
    v = reg.get_sample_value
    a = {"endpoint": "GET /a"}
    assert v("rewind_replay_requests_total", a) == 4
    assert v("rewind_replay_errors_total", a) == 1
    assert v("rewind_replay_errors_total", {"endpoint": "POST /b"}) == 0
    assert v("rewind_replay_latency_seconds_bucket", {**a, "le": "0.0025"}) == 1
    assert v("rewind_replay_latency_seconds_bucket", {**a, "le": "0.025"}) == 2
    assert v("rewind_replay_latency_seconds_bucket", {**a, "le": "30.0"}) == 3
    assert v("rewind_replay_latency_seconds_bucket", {**a, "le": "+Inf"}) == 4
    assert v("rewind_replay_latency_seconds_count", a) == 4
    assert v("rewind_replay_latency_seconds_sum", a) == pytest.approx(40.522)
    assert v("rewind_replay_schedule_lag_seconds") == 0.002
    assert v("rewind_replay_sent_requests") == 6 and v("rewind_replay_planned_requests") == 100
    assert b"# TYPE rewind_replay_latency_seconds histogram" in generate_latest(reg)


def test_open_ended_runs_export_no_planned_total_and_wrong_buckets_are_refused():
    """progress(sent, None) leaves rewind_replay_planned_requests out; a bucket list of the
    wrong length is an error naming the expected length."""
    reg = CollectorRegistry()
    live = LiveMetrics(reg)
    live.progress(10, None)
    assert reg.get_sample_value("rewind_replay_planned_requests") is None
    with pytest.raises(ValueError, match="expected 15"):
        live.add("GET /a", requests=1, errors=0, bucket_counts=[1], latency_sum=0.1)
