"""Prometheus metrics the master serves while a replay runs: ``LiveMetrics(registry)``.

The master feeds it once per summary cell a worker sends (one endpoint, one time bucket)::

    live.add("GET /items/:id", requests=120, errors=2, bucket_counts=[...], latency_sum=1.9,
             lag_seconds=0.004)
    live.progress(sent=1200, planned=5000)     # planned None: open-ended (--loop, --follow)

``bucket_counts`` are the requests per bound of ``LATENCY_BUCKETS`` that are *not* cumulative
(the requests whose latency is above the previous bound and at most this one), plus one last
count for +Inf. Exported (``rewind_replay_<what>_<unit>``):

* ``rewind_replay_requests_total{endpoint}``, ``rewind_replay_errors_total{endpoint}``
* ``rewind_replay_latency_seconds{endpoint}``: a histogram (``_bucket``/``_sum``/``_count``)
* ``rewind_replay_schedule_lag_seconds``: the schedule lag last reported (sent - due)
* ``rewind_replay_sent_requests``, ``rewind_replay_planned_requests`` (absent when open-ended)

The histogram is a custom collector (``HistogramMetricFamily``) and not a
``prometheus_client.Histogram``: a ``Histogram`` only takes one observation at a time, while
workers send counts already folded into buckets; adding those to a ``Histogram`` would need its
private fields. Counters and gauges are prometheus_client's own.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

__all__ = ["LATENCY_BUCKETS", "LiveMetrics", "bucket_counts_of", "serve", "served"]

# seconds; 1 ms .. 30 s, about 2-2.5x apart: an HTTP API's p50 and p99 fall between two bounds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
_LE = (*map(floatToGoString, LATENCY_BUCKETS), "+Inf")  # the le labels, as Histogram writes them


def bucket_counts_of(latencies_s: Iterable[float]) -> list[int]:
    """The non-cumulative counts per bound of ``LATENCY_BUCKETS`` (+Inf last) of latencies."""
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    for v in latencies_s:
        counts[bisect.bisect_left(LATENCY_BUCKETS, v)] += 1  # v == bound counts in that bucket
    return counts


class _Histograms:
    """The latency histogram per endpoint, kept as cumulative-ready counts (a collector)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the HTTP server collects from its own thread
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def add(self, endpoint: str, counts: list[int], total: float) -> None:
        with self.lock:
            mine = self.counts.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS) + 1))
            for i, n in enumerate(counts):
                mine[i] += n
            self.sums[endpoint] = self.sums.get(endpoint, 0.0) + total

    def describe(self):
        return [HistogramMetricFamily("rewind_replay_latency_seconds", "", labels=["endpoint"])]

    def collect(self):
        h = HistogramMetricFamily(
            "rewind_replay_latency_seconds",
            "Latency of replayed requests (send to answer), by endpoint", labels=["endpoint"])
        with self.lock:
            for endpoint, counts in sorted(self.counts.items()):
                cum, buckets = 0, []
                for bound, n in zip(_LE, counts, strict=True):
                    cum += n
                    buckets.append((bound, cum))
                h.add_metric([endpoint], buckets, self.sums[endpoint])
        yield h


class LiveMetrics:
    """The replay's live metrics in ``registry`` (one per run of the command)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter("rewind_replay_requests", "Requests replayed, by endpoint",
                                ["endpoint"], registry=registry)
        self.errors = Counter("rewind_replay_errors",
                              "Replayed requests that failed (no answer, or 5xx), by endpoint",
                              ["endpoint"], registry=registry)
        self.lag = Gauge("rewind_replay_schedule_lag_seconds",
                         "Schedule lag last reported by a worker (sent - due)", registry=registry)
        self.sent = Gauge("rewind_replay_sent_requests", "Requests sent so far", registry=registry)
        self.planned: Gauge | None = None  # made at the first known plan: absent when open-ended
        self._histograms = _Histograms()
        registry.register(self._histograms)

    def add(self, endpoint: str, *, requests: int, errors: int, bucket_counts: list[int],
            latency_sum: float, lag_seconds: float | None = None) -> None:
        """Fold one summary of ``requests`` answers to ``endpoint`` into the metrics."""
        if len(bucket_counts) != len(LATENCY_BUCKETS) + 1:
            raise ValueError(f"bucket_counts has {len(bucket_counts)} counts; expected "
                             f"{len(LATENCY_BUCKETS) + 1} (one per LATENCY_BUCKETS bound, +Inf)")
        self.requests.labels(endpoint).inc(requests)
        if errors:
            self.errors.labels(endpoint).inc(errors)
        else:
            self.errors.labels(endpoint)  # the series exists from the first request: rate() = 0
        self._histograms.add(endpoint, bucket_counts, latency_sum)
        if lag_seconds is not None:
            self.lag.set(lag_seconds)

    def progress(self, sent: int, planned: int | None) -> None:
        self.sent.set(sent)
        if planned is not None:
            if self.planned is None:
                self.planned = Gauge("rewind_replay_planned_requests",
                                     "Requests the run will send (absent when open-ended)",
                                     registry=self.registry)
            self.planned.set(planned)


def serve(registry: CollectorRegistry, port: int, addr: str):
    """Serve ``registry`` on ``http://addr:port/metrics``; returns the server (``shutdown()``)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


class served:  # noqa: N801 - used as a context manager: with served(...) as live
    """``LiveMetrics`` in a fresh registry served on ``addr:port`` from construction (None when
    ``port`` is 0; a port that cannot be bound raises ``OSError`` here, before any work); at the
    end of the ``with`` block the server lingers ``linger`` s, so a scrape after the last result
    sees the totals (not when the block raised: a failed run ends at once), then stops."""

    def __init__(self, port: int, addr: str, linger: float, log: Callable[..., None]) -> None:
        self.linger, self.log = linger, log
        self.live = self.server = None
        if port:
            self.live = LiveMetrics(CollectorRegistry())
            self.server = serve(self.live.registry, port, addr)
            log("replay.metrics", url=f"http://{addr}:{port}/metrics", linger_s=linger)

    def __enter__(self) -> LiveMetrics | None:
        return self.live

    def __exit__(self, exc_type, *_) -> None:
        if self.server is None:
            return
        if self.linger > 0 and exc_type is None:  # a failed run ends at once
            self.log("replay.metrics_linger", seconds=self.linger)
            time.sleep(self.linger)
        self.server.shutdown()
        self.server.server_close()
