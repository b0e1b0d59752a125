"""A worker's share of a ``--follow`` replay: steps arrive while it runs, one queue per connection.

``LiveShard.add(steps)`` puts each step on the queue of its captured connection; the first step
of a connection starts a greenlet with its own keep-alive client that sends the connection's
steps in arrival order, each at its due time (the time it reached the master, so ``lag`` is
send time - arrival at the replayer). A connection idle for ``idle_s`` closes its socket and
its greenlet ends; a later step of it opens a new one (captured connections carry no "closed"
mark, and a shadow run can last for days). ``end()`` lets every queue drain, then returns.
"""

from __future__ import annotations

from collections.abc import Callable

from gevent.pool import Group
from gevent.queue import Empty, Queue

from replayer.engine.pacing import GEVENT_CLOCK, Clock, send_step
from replayer.engine.plan import Step
from replayer.judge.compare import Comparer

__all__ = ["LiveShard"]


class LiveShard:
    def __init__(self, make_client: Callable[[], object], t0: float, out: list, *, worker: int,
                 comparer: Comparer, fire=None, idle_s: float = 60.0,
                 clock: Clock = GEVENT_CLOCK) -> None:
        self.make_client = make_client
        self.t0 = t0
        self.out = out
        self.worker = worker
        self.comparer = comparer
        self.fire = fire
        self.idle_s = idle_s
        self.clock = clock
        self.queues: dict[str, Queue] = {}
        self.group = Group()
        self.crashed: list[str] = []
        self.opened = 0  # replay connections opened (a captured one may reopen after idling)

    def add(self, steps: list[Step]) -> None:
        for s in steps:
            q = self.queues.get(s.conn)
            if q is None:
                q = self.queues[s.conn] = Queue()
                self.opened += 1
                self.group.spawn(self._connection, s.conn, q)
            q.put(s)

    def end(self) -> None:
        """No more steps: send what is queued, close every connection, wait for all of it."""
        for q in list(self.queues.values()):
            q.put(None)
        self.group.join()

    def _connection(self, conn: str, q: Queue) -> None:
        client = self.make_client()
        prev_done = self.t0
        try:
            while True:
                try:
                    s = q.get(timeout=self.idle_s)
                except Empty:  # no yield until the del: a step arriving now gets a new queue
                    if self.queues.get(conn) is q:
                        del self.queues[conn]
                    return
                if s is None:
                    return
                wait = self.t0 + s.due - self.clock.now()
                if wait > 0:
                    self.clock.sleep(wait)
                prev_done = send_step(s, client, self.t0, s.due, prev_done, self.out,
                                      worker=self.worker, comparer=self.comparer, fire=self.fire,
                                      now=self.clock.now)
        except Exception as exc:  # reported to the master in rewind_done, the others go on
            self.crashed.append(f"{conn}: {exc!r}")
        finally:
            client.close()
