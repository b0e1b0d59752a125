"""A worker's announcements to the master, a few at a time: ``Announcer``.

Every stateful answer is announced to the master (``rewind_values``) so that the workers whose
steps need it get it. One Locust message per answer cost each worker about a fifth of its CPU
and the master as much again (msgpack, ZeroMQ, the greenlet switches) on a range where every
request carries a value; so the answers in are gathered and sent together, at most
``every_s`` after the first one gathered or when ``max_items`` are waiting. Message:
``{"items": [[ref, values, at], ...], "from": worker}`` (``at``: when the answer was in, wall
clock, for the relay latency; ``values``: recorded -> candidate, ``{}`` for an answer that made
none, None for one that failed). The master passes the items on in the same form
(``StreamLearning.relayed``), one message per worker that needs some.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent

__all__ = ["EVERY_S", "MAX_ITEMS", "Announcer"]

EVERY_S = 0.002  # an answer waits at most this long to be sent on
MAX_ITEMS = 200  # answers per message at most


class Announcer:
    def __init__(self, send: Callable[[dict], None], worker: int, *, every_s: float = EVERY_S,
                 max_items: int = MAX_ITEMS, later: Callable = gevent.spawn_later,
                 wall: Callable[[], float] = time.time) -> None:
        self.send, self.worker = send, worker
        self.every_s, self.max_items = every_s, max_items
        self.later, self.wall = later, wall
        self.items: list[list] = []
        self._scheduled = False
        self.messages = 0  # messages sent (items / messages: the batching)

    def __call__(self, ref: tuple, values: dict | None, _to=None) -> None:
        """One answer in (the Correlator's ``relay``)."""
        self.items.append([list(ref), values, self.wall()])
        if len(self.items) >= self.max_items:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self.later(self.every_s, self._timer)

    def _timer(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if self.items:
            items, self.items = self.items, []
            self.messages += 1
            self.send({"items": items, "from": self.worker})
