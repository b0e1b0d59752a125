"""The values a worker knows: ``ValueStore``, recorded value -> candidate value per producer.

Each producer (a record, by ``(conn, seq)``) gets one entry when its answer arrived here or was
relayed from another worker: ``{recorded: candidate}`` for each value found in the candidate's
answer, or ``None`` when that answer failed (no answer). A step that needs a producer's values
``wait``\\ s for that producer only (a gevent ``Event`` per awaited producer), up to a deadline;
the waiting goes through a ``Waiting`` (``now()``, ``wait(event, timeout)``) so the logic is
tested with a simulated clock. At most ``max_refs`` producers are kept, oldest first (counted:
``evicted``); a step that needs an evicted one waits to its deadline and goes out as recorded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from gevent.event import Event

__all__ = ["FAILED", "GEVENT_WAITING", "TIMED_OUT", "ValueStore", "Waiting"]

FAILED = None  # the producer's answer failed
TIMED_OUT = object()  # the producer's answer did not arrive by the deadline


class Waiting(Protocol):
    def now(self) -> float: ...

    def wait(self, event: Event, timeout: float) -> bool: ...


class _GeventWaiting:
    __slots__ = ()
    now = staticmethod(time.monotonic)

    @staticmethod
    def wait(event: Event, timeout: float) -> bool:
        return event.wait(timeout)


GEVENT_WAITING: Waiting = _GeventWaiting()


class ValueStore:
    def __init__(self, waiting: Waiting = GEVENT_WAITING, max_refs: int = 200_000) -> None:
        self.waiting = waiting
        self.max_refs = max_refs
        self._values: OrderedDict[tuple, dict | None] = OrderedDict()
        self._events: dict[tuple, Event] = {}
        self.evicted = 0

    def put(self, ref: tuple, values: dict[str, str] | None) -> None:
        """The producer ``ref`` answered: its values (None: it failed); wakes who waits."""
        self._values[ref] = values
        self._values.move_to_end(ref)
        while len(self._values) > self.max_refs:
            self._values.popitem(last=False)
            self.evicted += 1
        ev = self._events.pop(ref, None)
        if ev is not None:
            ev.set()

    def known(self, ref: tuple) -> bool:
        return ref in self._values

    def get(self, ref: tuple, deadline: float):
        """The values of ``ref`` (a dict, ``FAILED``), waiting until ``deadline`` (on the
        waiting's clock) for them; ``TIMED_OUT`` when they did not come."""
        while ref not in self._values:
            left = deadline - self.waiting.now()
            if left <= 0:
                return TIMED_OUT
            ev = self._events.get(ref)
            if ev is None:
                ev = self._events[ref] = Event()
            self.waiting.wait(ev, left)
        return self._values[ref]
