"""Latency (and lag) distributions in bounded memory: DDSketch, relative error ``ACCURACY``.

A run may send millions of requests; the report's percentiles come from a DDSketch
(``ddsketch``, DataDog's reference implementation) instead of every value. Why DDSketch rather
than HdrHistogram: its guarantee is a *relative* error on every quantile (a p99 of 212 ms is
reported within 1 %, 2.1 ms, and a p50 of 0.3 ms within 3 us) with no range to choose up front
(HdrHistogram needs integer values and a highest trackable value), sketches of two workers or two
seconds merge exactly (the merged sketch is the sketch of the union), and adding a value costs
~0.6 us in pure Python. Memory is a few hundred bins per sketch whatever the count.

A worker adds values to a ``Raw`` instead: the same keys as the DDSketch (its own mapping,
``key``), counted in a plain dict, with count, sum, min and max; ``Raw.to_wire`` gives the
DDSketch's wire form, so the master reads it back as a DDSketch. Adding costs a log and a dict
update (a DDSketch's ``add`` goes through three Python calls and a bounds check of its dense
store); the dict holds one entry per distinct key (a few hundred) and lives 0.25 s.

``quantile`` is clamped to the exact minimum and maximum (kept beside the bins), so a run whose
values are all equal reports that value exactly. On the wire a sketch is a short list
(``to_wire``/``from_wire``): count, sum, min, max, zero count, then the positive and negative
stores as (first key, bin counts).
"""

from __future__ import annotations

import math

from ddsketch import DDSketch

__all__ = ["ACCURACY", "Raw", "from_wire", "maximum", "new", "quantile", "to_wire"]

ACCURACY = 0.01  # relative error of every quantile the report shows
_MAPPING = DDSketch(ACCURACY)._mapping
_MULT = _MAPPING._multiplier  # key(v) = ceil(log2(v) * _MULT) + offset (ddsketch's mapping)
_OFFSET = _MAPPING._offset
_TINY = _MAPPING.min_possible


def key(v: float) -> int:
    """The DDSketch key of a positive value (``_MAPPING.key``, inlined)."""
    return int(math.ceil(math.log2(v) * _MULT) + _OFFSET)


class Raw:
    """Values counted by DDSketch key on a worker; ``to_wire`` is a DDSketch's wire form."""

    __slots__ = ("count", "total", "lo", "hi", "zero", "pos", "neg")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.zero = 0
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}

    def add(self, v: float) -> None:
        self.count += 1
        self.total += v
        if v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v
        if v > _TINY:
            k = int(math.ceil(math.log2(v) * _MULT) + _OFFSET)
            self.pos[k] = self.pos.get(k, 0) + 1
        elif v < -_TINY:
            k = int(math.ceil(math.log2(-v) * _MULT) + _OFFSET)
            self.neg[k] = self.neg.get(k, 0) + 1
        else:
            self.zero += 1

    @staticmethod
    def _store(d: dict[int, int]) -> list:
        if not d:
            return [0, []]
        lo, hi = min(d), max(d)
        return [lo, [float(d.get(k, 0)) for k in range(lo, hi + 1)]]

    def to_wire(self) -> list:
        return [float(self.count), self.total, self.lo, self.hi, float(self.zero),
                self._store(self.pos), self._store(self.neg)]


def new() -> DDSketch:
    return DDSketch(ACCURACY)


def maximum(s: DDSketch) -> float | None:
    """The exact largest value added to ``s`` (DDSketch keeps it as ``_max``: no public name in
    the pinned 3.0.1); None when empty."""
    return s._max if s.count else None


def quantile(s: DDSketch, p: float) -> float | None:
    """The ``p``-th percentile (0-100) of ``s``, within ACCURACY, clamped to [min, max];
    None when empty."""
    if s.count == 0:
        return None
    v = s.get_quantile_value(p / 100)
    return min(max(v, s._min), s._max)


def _store_to_wire(st) -> list:
    if st.count == 0:
        return [0, []]
    lo, hi = st.min_key, st.max_key
    return [lo, st.bins[lo - st.offset:hi - st.offset + 1]]


def _store_from_wire(st, v: list) -> None:
    lo, bins = v
    for i, c in enumerate(bins):
        if c:
            st.add(lo + i, c)


def to_wire(s) -> list:
    if isinstance(s, Raw):
        return s.to_wire()
    return [s._count, s._sum, s._min, s._max, s._zero_count, _store_to_wire(s._store),
            _store_to_wire(s._negative_store)]


def from_wire(v: list) -> DDSketch:
    s = new()
    count, total, lo, hi, zero, pos, neg = v
    if count:
        _store_from_wire(s._store, pos)
        _store_from_wire(s._negative_store, neg)
        s._count, s._sum, s._min, s._max, s._zero_count = count, total, lo, hi, zero
    return s
