"""Records -> steps, dealt to workers by connection, as the range is read: ``Dealer``.

The master reads the range once, in capture order (``--loop``: again for each iteration), and
each record goes through ``Dealer.deal``: filtered and rewritten by the replay's rules, given
its due time, and dealt to a worker. A captured connection goes to the worker with the fewest
steps dealt so far the first time it is seen, and stays there for the whole run (every loop
iteration), so its requests go out on one worker, in order, exactly once per iteration.

Due times (seconds after the start), for the k-th step of a pass (k from 0) in iteration i:
  recorded  (capture time - first capture time) / speed + i * span
  rps       k / rate + i * span
  max       0 (every connection sends its next request as soon as the last one is answered)
  ramp      ramp.due(k + i * planned): the ramp's rising rate (``replayer.engine.ramp``)
  follow    when the record reached the replayer (given by the caller)
``span`` (first due to one interval after the last) and ``planned`` (steps in one pass) are
known once the first pass is over, which is before the second pass begins.

``passes(open_records)`` runs the passes: it calls ``open_records()`` for each (re-reading the
source) and yields (worker, step) until the range is done (no loop), ``due_limit`` is reached,
or the ramp is over. ``on_record(record)`` (the correlation hook) sees every record of the
first pass in capture order before it is dealt. Nothing here holds more than one record.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from replayer.engine.plan import Plan, Schedule, Step, make_step
from replayer.engine.ramp import Ramp
from replayer.engine.rewrite import Request, Rules
from sidecar.contract.record import Record

__all__ = ["FORGET_AFTER", "Dealer", "build_plan"]

# A connection not seen for this many dealt steps is forgotten (its next request, if any, is
# dealt afresh): the master's memory stays bounded over days of --follow or a range of many
# short connections. Order holds across it as long as the connection's earlier steps were
# finished by then (a worker holds at most feeder.CREDIT unfinished steps).
FORGET_AFTER = 500_000
_SWEEP_EVERY = 100_000


class Dealer:
    def __init__(self, rules: Rules, schedule: Schedule, workers: int, *,
                 ramp: Ramp | None = None, loop: bool = False, due_limit: float | None = None,
                 time_limited: bool = False,
                 on_record: Callable[[Record], None] | None = None,
                 learn: Callable[[Record, Step, int], None] | None = None) -> None:
        self.rules = rules
        self.schedule = schedule
        self.ramp = ramp
        self.loop = loop or ramp is not None
        self.due_limit = due_limit  # nothing due at or after this is dealt (--duration)
        # max mode with --duration: nothing is ever due later, the Feeder's time limit ends the
        # dealing, so --loop passes go on until it does
        self.time_limited = time_limited
        self.on_record = on_record  # correlation hook: records in capture order, first pass
        self.learn = learn  # correlation hook: (record, step, worker) of each first-pass step, in order
        self.worker_of: dict[str, int] = {}
        self.last_seen: dict[str, int] = {}  # connection -> dealt steps when it was last seen
        self.dealt = 0  # steps dealt, every pass
        self.forgotten = 0  # connections forgotten (FORGET_AFTER)
        self.connections_seen = 0
        self.load = [0] * workers  # steps dealt to each worker
        self.records = 0  # records read (first pass)
        self.skipped: Counter = Counter()  # reason -> records not sent (first pass)
        self.recorded_status: Counter = Counter()  # of the steps of the first pass
        self.planned = 0  # steps in one pass (complete once the first pass is over)
        self.span = 0.0  # seconds of one pass (complete once the first pass is over)
        self.first_pass_done = False
        self.first_ts_ns: int | None = None
        self.last_ts_ns: int | None = None
        self.iteration = 0
        self._k = 0  # step number within the pass
        self._last_due = 0.0
        self.over = False  # a step was due past the limit: the run's dealing is over

    @property
    def steps(self) -> int:
        return sum(self.load)

    @property
    def connections(self) -> int:
        return self.connections_seen

    def deal(self, r: Record, due: float | None = None) -> tuple[int, Step] | None:
        """The worker and step of record ``r`` (None: filtered out); ``due`` given: follow."""
        first = self.iteration == 0
        if first:
            self.records += 1
            if self.on_record is not None:
                self.on_record(r)  # correlation hook: learn bindings in capture order
        req = self.rules.apply(r)
        if not isinstance(req, Request):
            if first:
                self.skipped[req] += 1
            return None
        if self.first_ts_ns is None:
            self.first_ts_ns = r.ts_ns
        if first:
            self.last_ts_ns = r.ts_ns
            self.recorded_status[r.status] += 1
        k = self._k
        if due is None:
            due = self._due(r, k)
        if math.isinf(due) or (self.due_limit is not None and due >= self.due_limit):
            self.over = True  # past the ramp or --duration: nothing more is dealt
            return None
        self._k += 1
        self._last_due = due
        w = self.worker_of.get(r.conn)
        if w is None:
            w = self.worker_of[r.conn] = min(range(len(self.load)), key=self.load.__getitem__)
            if first:
                self.connections_seen += 1
        self.load[w] += 1
        self.dealt += 1
        self.last_seen[r.conn] = self.dealt
        if self.dealt % _SWEEP_EVERY == 0:
            self._forget()
        step = make_step(k, r, req, due)
        step.iteration = self.iteration
        if first and self.learn is not None:  # correlation hook: learn before it is dealt
            self.learn(r, step, w)
        return w, step

    def _forget(self) -> None:
        old = [c for c, n in self.last_seen.items() if n <= self.dealt - FORGET_AFTER]
        for c in old:
            del self.last_seen[c]
            del self.worker_of[c]
        self.forgotten += len(old)

    def _due(self, r: Record, k: int) -> float:
        sch, i = self.schedule, self.iteration
        if self.ramp is not None:
            return self.ramp.due(k + i * self.planned)
        if sch.mode == "recorded":
            return (r.ts_ns - self.first_ts_ns) / 1e9 / sch.speed + i * self.span
        if sch.mode == "rps":
            return k / sch.rate + i * self.span
        return 0.0

    def end_pass(self) -> None:
        """The source is exhausted: the first pass fixes ``planned`` and ``span``."""
        if not self.first_pass_done:
            self.first_pass_done = True
            self.planned = self._k
            last = self._last_due
            if self._k:
                self.span = last + (last / (self._k - 1) if self._k > 1 else 1.0)
        self.iteration += 1
        self._k = 0

    def passes(self, open_records: Callable[[], Iterable[Record]]) -> Iterator[tuple[int, Step]]:
        """Every (worker, step) of the run: one pass without loop, else until a limit."""
        while True:
            for r in open_records():
                dealt = self.deal(r)
                if self.over:
                    return
                if dealt is not None:
                    yield dealt
            self.end_pass()
            if not self.loop or self.planned == 0:
                return
            if self.span <= 0 and self.due_limit is None and not self.time_limited:
                return  # max mode without --duration: once


def build_plan(records: Iterable[Record], rules: Rules, schedule: Schedule, workers: int,
               learn=None) -> Plan:
    """One pass of ``records`` (capture order) dealt as a run deals them, collected per worker:
    for tests and small tools (a run streams instead of holding a Plan). ``learn``
    (correlation, ``PlanLearning``) sees each step as it is made and links the dealt plan."""
    dealer = Dealer(rules, schedule, workers, learn=learn)
    shards: list[list[Step]] = [[] for _ in range(workers)]
    for w, step in dealer.passes(lambda: records):
        shards[w].append(step)
    plan = Plan(shards, dict(dealer.skipped), dealer.span)
    if learn is not None:  # correlation hook: values needed on another worker are relayed
        learn.link(plan.shards)
    return plan
