"""Learning in the master, while the plan is built: ``PlanLearning``.

``build_plan`` calls it once per step it makes, with the record, in capture order (the order the
records pass before they are dealt); it feeds ``replayer.correlate.Learner`` (streaming and
bounded, docs/correlate.md) and puts on the step what its answer makes and what its request
needs (``Step.corr``, ``stepwire``). Only records that become steps are learned from: a value
made by a record the filters drop is never bound, and its uses go out as recorded.

``link(plan)``, once the steps are dealt, marks each producer whose values a step on *another*
worker needs with that worker (``relay_to``): its worker sends the values to the master, which
passes them on (``replayer.engine.wire.MSG_VALUES``). Why the master and not Redis: it is
already connected to every worker (Locust's ZeroMQ channel, one hop each way), needs no Redis
when the range comes from an archive or a file, and sends each value only to the workers that
need it; what it costs is measured in ``make bench-replay`` (``relay_ms``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from replayer.correlate import Learner
from replayer.engine.correlation.stepwire import (AFTER, AWAITED, RELAY_TO, bindings_of,
                                                  corr_to_wire, empty_corr)

__all__ = ["PlanLearning"]


class PlanLearning:
    """The master's learner for one plan; ``stats()`` for the report."""

    def __init__(self, endpoint: Callable[[str, str], str], **limits) -> None:
        self.learner = Learner(endpoint, **limits)
        self._steps: dict[tuple[str, int], object] = {}  # ref -> step (until link)
        self.steps_with_values = 0
        self.relays = 0
        self.learn_s = 0.0  # time spent learning (the master's cost)
        self.first_ns: int | None = None  # capture time of the first record (--shift-time)

    def __call__(self, record, step, worker: int | None = None) -> None:
        """Learn from ``record`` and put what ``step`` makes and needs on it."""
        t = time.perf_counter()
        if self.first_ns is None:
            self.first_ns = record.ts_ns
        learned = self.learner.feed(record)
        step.corr = corr_to_wire(learned.ref, learned.produced, learned.bindings, learned.after)
        self._steps[(record.conn, record.seq)] = step
        if step.corr is not None:
            self.steps_with_values += 1
        a = learned.after
        if a is not None:
            p = self._steps.get((a.conn, a.seq))
            if p is None:  # not a step (filtered out): nothing to follow
                step.corr[AFTER] = None
            else:
                if p.corr is None:
                    p.corr = empty_corr((a.conn, a.seq))
                p.corr[AWAITED] = True
        self.learn_s += time.perf_counter() - t

    def link(self, shards: list[list]) -> None:
        """Mark producers whose values a step dealt to another worker needs (``relay_to``)."""
        worker_of = {}
        for w, shard in enumerate(shards):
            for s in shard:
                worker_of[s.conn] = w
        for w, shard in enumerate(shards):
            for s in shard:
                if s.corr is None:
                    continue
                needs = [producer for _v, producer, _uses in bindings_of(s.corr)]
                if s.corr[AFTER] is not None:
                    needs.append(tuple(s.corr[AFTER]))
                for producer in needs:
                    p = self._steps.get(producer)
                    if p is None or worker_of[p.conn] == w:
                        continue
                    to = p.corr[RELAY_TO]
                    if w not in to:
                        to.append(w)
                        self.relays += 1
        self._steps.clear()

    def stats(self) -> dict:
        st = self.learner.stats
        return {"records": st.records, "values_made": st.produced, "bindings": st.bindings,
                "uses": st.uses, "ordered": st.ordered,
                "steps_with_values": self.steps_with_values,
                "relayed_producers": self.relays, "learn_s": round(self.learn_s, 4),
                "learn_us_per_record": round(self.learn_s / st.records * 1e6, 1)
                if st.records else None,
                "left_out": {"echoed": st.echoed, "sent_first": st.sent_first,
                             "not_distinctive": st.not_distinctive, "constants": st.shared,
                             "premature": st.premature, "expired": st.expired,
                             "rules_dropped": st.rules_dropped}}


