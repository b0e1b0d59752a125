"""A worker's share of a replay, arriving while it runs: one queue and one greenlet per connection.

Every mode goes this one way (recorded, rps, max, ramp, loop, follow): the master deals steps
as it reads the range and sends them in batches; ``Shard.add(steps)`` puts each on the queue of
its captured connection. The first step of a connection starts a greenlet with its own
keep-alive client, which sends the connection's steps in arrival order (the master deals a
connection to one worker, in capture order, so that is recorded order), each at its due time
(``step.due`` s after ``t0``; the master has already folded loop iterations and the ramp into
it). A connection's socket is opened ``PRECONNECT_LEAD_S`` before its first request; one that
has nothing queued for ``idle_s`` closes and its greenlet ends (a later step opens a new one).
``end()`` (no more steps will come) lets every queue drain, then returns.

A step due at or after ``limit()`` (``--duration``, or the master's stop) is not sent; it is
counted in ``unsent`` (the master's credits count it as finished, the report does not).

The correlation hooks (issue 15): ``hooks.before_send(step)`` is called just before a step is
sent, after its due time (it may rewrite the step, or wait for a value another answer brings);
``hooks.after_answer(step, status, body)`` sees each answer before it is judged.
"""

from __future__ import annotations

from collections.abc import Callable

from gevent.pool import Group
from gevent.queue import Empty, Queue

from replayer.engine.pacing import GEVENT_CLOCK, PRECONNECT_LEAD_S, Clock, preconnect, send_step
from replayer.engine.plan import Step
from replayer.judge.compare import Comparer

__all__ = ["Shard", "StepHooks"]


class StepHooks:
    """Where a step may be changed just before it is sent, and where answers are seen. This
    default does nothing; correlation (issue 15 phase 2) subclasses it."""

    active = False  # True: before_send is called (and requests are built after it)

    def before_send(self, step: Step) -> Step:  # correlation hook: finalise before send
        return step

    def after_answer(self, step: Step, status: int, body: bytes) -> None:  # correlation hook
        return None


class Shard:
    def __init__(self, make_client: Callable[[], object], t0: float, sink, *, worker: int,
                 comparer: Comparer, fire=None, idle_s: float = 60.0,
                 limit: Callable[[], float | None] = lambda: None,
                 hooks: StepHooks | None = None, clock: Clock = GEVENT_CLOCK) -> None:
        self.make_client = make_client
        self.t0 = t0
        self.sink = sink  # takes each Result
        self.worker = worker
        self.comparer = comparer
        self.fire = fire
        self.idle_s = idle_s
        self.limit = limit
        self.hooks = hooks or StepHooks()
        self.clock = clock
        self.queues: dict[str, Queue] = {}
        self.group = Group()
        self.crashed: list[str] = []
        self.opened = 0  # replay connections opened (a captured one may reopen after idling)
        self.unsent = 0  # steps not sent: due at or after the limit
        self.queued = 0  # steps added and not finished yet

    def add(self, steps: list[Step]) -> None:
        for s in steps:
            q = self.queues.get(s.conn)
            if q is None:
                q = self.queues[s.conn] = Queue()
                self.opened += 1
                self.group.spawn(self._connection, s.conn, q)
            q.put(s)
        self.queued += len(steps)

    def end(self) -> None:
        """No more steps: send what is queued, close every connection, wait for all of it."""
        for q in list(self.queues.values()):
            q.put(None)
        self.group.join()

    def _connection(self, conn: str, q: Queue) -> None:
        client = self.make_client()
        now, sleep, t0 = self.clock.now, self.clock.sleep, self.t0
        hooks = self.hooks
        after = hooks.after_answer if hooks.active else None
        finalise = getattr(client, "finalise", None)  # correlation hook (CorrelatedConnection)
        prev_done = t0
        first = True
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
                self.queued -= 1
                end = self.limit()
                if end is not None and s.due >= end:
                    self.unsent += 1
                    continue
                req = None if hooks.active else client.prepare(s)  # built before its due time
                due = t0 + s.due
                if first:  # connect shortly before the first request, as the recorded client
                    first = False  # did (a thread-per-connection server must not hold idle ones)
                    lead = due - PRECONNECT_LEAD_S - now()
                    if lead > 0:
                        sleep(lead)
                    preconnect(client)
                wait = due - now()
                if wait > 0:
                    sleep(wait)
                sent = now()
                end = self.limit()
                if end is not None and sent - t0 >= end:
                    self.unsent += 1
                    continue
                if hooks.active:
                    s = hooks.before_send(s)
                    sent = now()
                if finalise is not None:  # correlation hook: wait for values, carry them
                    s, req = finalise(s, req if req is not None else client.prepare(s))
                    sent = now()
                prev_done = send_step(s, client, t0, s.due, prev_done, self.sink,
                                      worker=self.worker, comparer=self.comparer, fire=self.fire,
                                      now=now, sent=sent, req=req, after_answer=after)
        except Exception as exc:  # reported to the master in rewind_done, the others go on
            self.crashed.append(f"{conn}: {exc!r}")
        finally:
            client.close()
