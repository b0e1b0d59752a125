"""Learning while the master deals, and the relay of values between workers: ``StreamLearning``.

The streaming engine (``replayer.engine.dealer.Dealer``) hands each first-pass step, in capture
order, to ``StreamLearning(record, step, worker)`` just before it is dealt: it learns
(``PlanLearning``) and puts on the step what it makes and needs (``Step.corr``). A step is sent
before the whole range is read, so which workers need a producer's values (and whether a later
step follows it) is known only as their consumers are dealt: with more than one worker, every
worker sends each answer of a step with ``corr`` to the master (``relay_all``), and
the master passes them on (``relayed``) to the workers whose steps need them (``routes``, filled
as consumers are dealt); values that arrived before their consumer was dealt are kept
(``made``) and sent when it is. Everything here is bounded by ``max_refs`` (oldest dropped,
counted in ``dropped``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from replayer.engine.correlation.planning import PlanLearning
from replayer.engine.correlation.stepwire import AFTER, RELAY_TO, bindings_of

__all__ = ["StreamLearning"]


class StreamLearning(PlanLearning):
    def __init__(self, endpoint: Callable[[str, str], str], *, max_refs: int = 200_000,
                 **limits) -> None:
        super().__init__(endpoint, **limits)
        self.max_refs = max_refs
        self._where: OrderedDict[tuple, int] = OrderedDict()  # producer ref -> its worker
        self.routes: OrderedDict[tuple, set[int]] = OrderedDict()  # ref -> workers needing it
        self.made: OrderedDict[tuple, list] = OrderedDict()  # ref -> its relayed item
        self.send: Callable[[int, dict], None] | None = None  # the master's (worker, message)
        self.dropped = 0  # references forgotten (max_refs)
        self.forwarded = 0  # value messages passed on to a worker

    def __call__(self, record, step, worker: int | None = None) -> None:
        super().__call__(record, step)
        if len(self._steps) > self.max_refs:  # the parent keeps ref -> step: bounded here
            del self._steps[next(iter(self._steps))]
            self.dropped += 1
        corr = step.corr
        if corr is None or worker is None:
            return
        self._bounded(self._where)[(record.conn, record.seq)] = worker
        needs = [producer for _v, producer, _uses in bindings_of(corr)]
        if corr[AFTER] is not None:
            needs.append(tuple(corr[AFTER]))
        for ref in needs:
            wp = self._where.get(ref)
            if wp is None or wp == worker:
                continue
            to = self.routes.get(ref)
            if to is None:
                to = self._bounded(self.routes)[ref] = set()
            if worker in to:
                continue
            to.add(worker)
            self.relays += 1
            p = self._steps.get(ref)
            if p is not None and p.corr is not None and worker not in p.corr[RELAY_TO]:
                p.corr[RELAY_TO].append(worker)  # reaches the worker if not sent yet
            item = self.made.get(ref)
            if item is not None and self.send is not None:  # made before this step was dealt
                self.send(worker, {"items": [item]})
                self.forwarded += 1

    def relayed(self, msg: dict) -> None:
        """A worker's answers (``rewind_values``, ``relaying.Announcer``): each to the workers
        that need it (one message per worker), and kept for steps dealt later."""
        out: dict[int, list] = {}
        sender = msg.get("from")
        for item in msg["items"]:
            ref = tuple(item[0])
            self._bounded(self.made)[ref] = item
            for w in self.routes.get(ref, ()):
                if w != sender:
                    out.setdefault(w, []).append(item)
        if self.send is None:
            return
        for w, items in out.items():
            self.send(w, {"items": items})
            self.forwarded += len(items)

    def _bounded(self, d: OrderedDict) -> OrderedDict:
        while len(d) >= self.max_refs:
            d.popitem(last=False)
            self.dropped += 1
        return d

    def stats(self) -> dict:
        return {**super().stats(), "forwarded": self.forwarded, "dropped": self.dropped}
