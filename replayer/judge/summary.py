"""What a set of replayed requests came to, in bounded memory, mergeable: ``Summary``.

A worker folds each request's ``replayer.judge.result.Result`` into the ``Summary`` of its
endpoint and second (``replayer.judge.aggregate.Aggregator``), ships the summaries to the master
and forgets them; the master merges them (``merge``) into per-endpoint totals, a time series and
the ramp's steps. Nothing in a summary grows with the number of requests: counts, DDSketches
(``replayer.judge.sketch``: latency, lag, the scheduler's own lag, and the latency a client saw
including the wait for its connection), counts per fixed latency bucket (the live metrics'
Prometheus histogram bounds), and capped tables: error kinds (``MAX_KINDS``), mismatching JSON
paths (``MAX_PATHS``) and the first ``EXAMPLES`` mismatches with their diffs.

The rules are the ones every reader shares: an error is ``Result.failed``
(``result.is_error``); a status that differs from the recording is a mismatch, counted apart.
"""

from __future__ import annotations

from bisect import bisect_left

from replayer.judge import sketch
from replayer.judge.result import Result

__all__ = ["EXAMPLES", "MAX_KINDS", "MAX_PATHS", "OTHER", "SERIES_SKETCHES", "Summary"]

EXAMPLES = 5  # mismatch examples kept per summary (the first ones)
MAX_KINDS = 50  # distinct error texts kept; more are counted under OTHER
MAX_PATHS = 200  # distinct mismatching JSON paths kept; more are counted under OTHER
OTHER = "(other)"

_COUNTS = ("count", "errors", "transport_errors", "http_5xx", "answered", "status_mismatches",
           "compared", "body_mismatches", "waited")
_SKETCHES = ("latency", "lag", "sched", "client")
SERIES_SKETCHES = ("latency", "lag")  # what a time series bucket keeps


def _bump(table: dict, key: str, n: int, cap: int) -> None:
    if key in table or len(table) < cap:
        table[key] = table.get(key, 0) + n
    else:
        table[OTHER] = table.get(OTHER, 0) + n


class Summary:
    """Counts, sketches and capped tables of some requests; ``add`` one, ``merge`` another."""

    __slots__ = (*_COUNTS, *_SKETCHES, "first_sent", "last_sent", "last_end", "status",
                 "error_kinds", "diff_paths", "buckets", "latency_sum", "examples")

    def __init__(self, nbuckets: int = 0, *, raw: bool = False) -> None:
        """``raw``: a worker's, for ``add`` (``sketch.Raw``); else the master's, for ``merge``
        and percentiles (DDSketches)."""
        for name in _COUNTS:
            setattr(self, name, 0)
        for name in _SKETCHES:
            setattr(self, name, sketch.Raw() if raw else sketch.new())
        self.first_sent = self.last_sent = self.last_end = None
        self.status: dict[str, int] = {}
        self.error_kinds: dict[str, int] = {}
        self.diff_paths: dict[str, int] = {}
        self.buckets = [0] * nbuckets  # per latency bound (s) + one above the last (+Inf)
        self.latency_sum = 0.0  # seconds, answered requests
        self.examples: list[dict] = []

    def add(self, r: Result, bounds: tuple[float, ...] = (), timed: bool = True) -> None:
        self.count += 1
        st = str(r.status)
        self.status[st] = self.status.get(st, 0) + 1
        if self.first_sent is None or r.sent < self.first_sent:
            self.first_sent = r.sent
        if self.last_sent is None or r.sent > self.last_sent:
            self.last_sent = r.sent
        end = r.sent + r.latency_ms / 1000
        if self.last_end is None or end > self.last_end:
            self.last_end = end
        failed = r.failed
        if failed:
            self.errors += 1
            _bump(self.error_kinds, r.error or f"HTTP {r.status}", 1, MAX_KINDS)
        if r.status >= 500:
            self.http_5xx += 1
        if timed:
            self.lag.add(r.lag_ms)
            self.sched.add(r.lag_ms - r.wait_ms)
            if r.wait_ms > 0:
                self.waited += 1
        if r.error is not None:
            self.transport_errors += 1
            return
        self.answered += 1
        self.latency.add(r.latency_ms)
        self.latency_sum += r.latency_ms / 1000
        if not failed:
            self.client.add(r.latency_ms + r.wait_ms)
        if self.buckets:
            self.buckets[bisect_left(bounds, r.latency_ms / 1000)] += 1
        mismatch = not r.status_ok
        if mismatch:
            self.status_mismatches += 1
        if r.body_ok is not None:
            self.compared += 1
            if not r.body_ok:
                self.body_mismatches += 1
                mismatch = True
                for d in r.diffs:
                    _bump(self.diff_paths, d, 1, MAX_PATHS)
        if mismatch and len(self.examples) < EXAMPLES:
            self.examples.append({"idx": r.idx, "iteration": r.iteration, "status": r.status,
                                  "status_ok": r.status_ok, "diffs": list(r.diffs)})

    def merge(self, o: Summary, sketches: tuple[str, ...] = _SKETCHES) -> None:
        """Add ``o`` into this one; only the named ``sketches`` (a time series' buckets keep
        latency and lag: each sketch is some 20 KB on the master)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(o, name))
        for name in sketches:
            getattr(self, name).merge(getattr(o, name))
        if o.first_sent is not None:
            self.first_sent = o.first_sent if self.first_sent is None else min(self.first_sent,
                                                                               o.first_sent)
            self.last_sent = o.last_sent if self.last_sent is None else max(self.last_sent,
                                                                            o.last_sent)
            self.last_end = o.last_end if self.last_end is None else max(self.last_end,
                                                                         o.last_end)
        for mine, theirs, cap in ((self.status, o.status, 1 << 30),
                                  (self.error_kinds, o.error_kinds, MAX_KINDS),
                                  (self.diff_paths, o.diff_paths, MAX_PATHS)):
            for k, n in theirs.items():
                _bump(mine, k, n, cap)
        if len(o.buckets) > len(self.buckets):
            self.buckets += [0] * (len(o.buckets) - len(self.buckets))
        for i, n in enumerate(o.buckets):
            self.buckets[i] += n
        self.latency_sum += o.latency_sum
        self.examples.extend(o.examples[:max(0, EXAMPLES - len(self.examples))])

    def to_wire(self) -> list:
        return [[getattr(self, n) for n in _COUNTS],
                [sketch.to_wire(getattr(self, n)) for n in _SKETCHES],
                [self.first_sent, self.last_sent, self.last_end], self.status, self.error_kinds,
                self.diff_paths, self.buckets, self.latency_sum, self.examples]

    @classmethod
    def from_wire(cls, v: list) -> Summary:
        s = cls()
        counts, sketches, times, s.status, s.error_kinds, s.diff_paths, s.buckets, \
            s.latency_sum, s.examples = v
        for name, x in zip(_COUNTS, counts, strict=True):
            setattr(s, name, x)
        for name, x in zip(_SKETCHES, sketches, strict=True):
            setattr(s, name, sketch.from_wire(x))
        s.first_sent, s.last_sent, s.last_end = times
        return s
