"""Results folded as they come, on the worker (``Aggregator``) and on the master (``Totals``).

A worker adds each ``Result`` to its ``Aggregator``: one ``Summary`` per (endpoint, second of
the send time), a count of requests per second of their *due* time (what the schedule asked
for), and with a ramp one ``Summary`` per ramp step (by due time). ``take()`` hands over what
was gathered since the last call, as wire data, and starts afresh: the worker ships it every
``SHIP_EVERY_S`` and keeps nothing per request.

The master merges every shipment into ``Totals``: a ``Summary`` per endpoint, a time series of
``Summary``s, the due counts and the ramp's steps. The series starts with 1 s buckets; when it
holds more than ``MAX_BUCKETS``, neighbours are merged pairwise (buckets of 2 s, 4 s, ...), so a
three-hour soak keeps at most ``MAX_BUCKETS`` buckets (338 of 32 s) and the master's memory does
not grow with the run's length, only with the number of endpoints (capped tables, see
``Summary``). A bucket keeps the latency and lag sketches only (``SERIES_SKETCHES``, some 20 KB
each on the master): the series costs at most ~15 MB, reached after ``MAX_BUCKETS`` seconds.
"""

from __future__ import annotations

from replayer.judge import sketch
from replayer.judge.result import Result
from replayer.judge.summary import SERIES_SKETCHES, Summary

__all__ = ["MAX_BUCKETS", "MAX_ENDPOINTS", "OTHER_ENDPOINTS", "Aggregator", "Totals"]

MAX_BUCKETS = 360
MAX_ENDPOINTS = 1000  # endpoints kept apart; the rest are merged under OTHER_ENDPOINTS
OTHER_ENDPOINTS = "(other endpoints)"


class Aggregator:
    """A worker's fold of its results; ``add`` each, ``take`` a shipment now and then."""

    def __init__(self, *, timed: bool = True, bounds: tuple[float, ...] = (),
                 step_of=None) -> None:
        self.timed = timed  # lag is meaningful (not max mode)
        self.bounds = tuple(bounds)  # fixed latency bucket bounds, s (live metrics)
        self.step_of = step_of  # ramp: due (s) -> step index
        self._reset()

    def _reset(self) -> None:
        self.cells: dict[tuple[str, int], Summary] = {}
        self.due: dict[int, int] = {}
        self.steps: dict[int, Summary] = {}
        self.finished = 0  # results added since the last take

    def add(self, r: Result) -> None:
        key = (r.endpoint, int(r.sent) if r.sent > 0 else 0)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Summary(len(self.bounds) + 1 if self.bounds else 0, raw=True)
        cell.add(r, self.bounds, self.timed)
        sec = int(r.due) if r.due > 0 else 0
        self.due[sec] = self.due.get(sec, 0) + 1
        if self.step_of is not None:
            i = self.step_of(r.due)
            st = self.steps.get(i)
            if st is None:
                st = self.steps[i] = Summary(raw=True)
            st.add(r, (), self.timed)
        self.finished += 1

    def take(self) -> dict:
        """What was gathered since the last ``take``, as wire data; starts afresh."""
        out = {"finished": self.finished,
               "cells": [[ep, sec, s.to_wire()] for (ep, sec), s in self.cells.items()],
               "due": list(self.due.items()),
               "steps": [[i, s.to_wire()] for i, s in self.steps.items()]}
        self._reset()
        return out


class Totals:
    """The master's merge of every shipment: per endpoint, over time, per ramp step."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self.endpoints: dict[str, Summary] = {}
        self.series: dict[int, Summary] = {}  # bucket index -> Summary (by send time)
        self.due: dict[int, int] = {}  # bucket index -> requests due in it
        self.steps: dict[int, Summary] = {}  # ramp step -> Summary (by due time)
        self.bucket_s = 1
        self.max_buckets = max_buckets
        self.finished = 0
        self.sent = 0  # requests sent (results merged)
        self.errors = 0
        self.recent_lag = sketch.new()  # lag since the progress line last took it

    def take_recent_lag(self):
        out, self.recent_lag = self.recent_lag, sketch.new()
        return out

    def merge(self, data: dict) -> list[tuple[str, Summary]]:
        """Merge one shipment (``Aggregator.take()``); returns its (endpoint, Summary) cells."""
        cells = []
        self.finished += data["finished"]
        for ep, sec, wire in data["cells"]:
            if ep not in self.endpoints and len(self.endpoints) >= MAX_ENDPOINTS:
                ep = OTHER_ENDPOINTS  # counted, in one row: the table stays bounded
            s = Summary.from_wire(wire)
            cells.append((ep, s))
            self.sent += s.count
            self.errors += s.errors
            self.recent_lag.merge(s.lag)
            self._into(self.endpoints, ep, s)
            self._into(self.series, sec // self.bucket_s, s, SERIES_SKETCHES)
        for sec, n in data["due"]:
            b = sec // self.bucket_s
            self.due[b] = self.due.get(b, 0) + n
        for i, wire in data["steps"]:
            self._into(self.steps, i, Summary.from_wire(wire))
        while len(self.series) > self.max_buckets:
            self._coarsen()
        return cells

    def add_summary(self, endpoint: str, sec: int, s: Summary) -> None:
        """Merge one summary directly (tests, folding a list of results)."""
        self._into(self.endpoints, endpoint, s)
        self._into(self.series, sec // self.bucket_s, s, SERIES_SKETCHES)

    @staticmethod
    def _into(table: dict, key, s: Summary, sketches=None) -> None:
        mine = table.get(key)
        if mine is None:  # a new one: ``s`` may go into several tables
            mine = table[key] = Summary()
        if sketches is None:
            mine.merge(s)
        else:
            mine.merge(s, sketches)

    def _coarsen(self) -> None:
        series, due = self.series, self.due
        self.series, self.due = {}, {}
        for b, s in series.items():
            self._into(self.series, b // 2, s, SERIES_SKETCHES)
        for b, n in due.items():
            self.due[b // 2] = self.due.get(b // 2, 0) + n
        self.bucket_s *= 2

    def total(self) -> Summary:
        """Every endpoint merged into one Summary (a new object)."""
        out = Summary()
        for s in self.endpoints.values():
            out.merge(s)
        return out

    @classmethod
    def of(cls, results, *, timed: bool = True, step_of=None) -> Totals:
        """The Totals of a list of results, as a run's shipments would give them."""
        agg = Aggregator(timed=timed, step_of=step_of)
        for r in results:
            agg.add(r)
        t = cls()
        t.merge(agg.take())
        return t
