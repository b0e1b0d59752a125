"""The master's side of the stream: dealt steps go to the workers with a bounded look-ahead.

``Feeder.run()`` takes (worker, step) pairs as the ``replayer.engine.dealer.Dealer`` deals them
(reading the range in capture order, or the live stream) and sends them to their worker in
batches (``send(worker, steps)``). It stays only a little ahead of the run, so neither the
master nor a worker ever holds more than the look-ahead:

  timed modes (recorded, rps, ramp, follow)  a step goes out once it is due within
                                             ``lookahead_s`` (and the worker has credit)
  max                                        a worker has at most ``credit`` steps dealt and not
                                             finished (its shipments return credits: ``finished``)

A step that may not go yet waits (the feeder sleeps ``POLL_S`` and looks again); batches go out
when ``BATCH`` steps are gathered for a worker, before the feeder waits, and when the source
pauses (a ``None`` item: the live stream had nothing more for now). ``stop()`` ends the run's
dealing (the master's stop), and so does ``time_limit`` (``--duration``): a step dealt after it
could not be sent any more, so a run whose workers fell behind its schedule does not go on
reading and dealing steps that would all be counted unsent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from replayer.engine.pacing import GEVENT_CLOCK, Clock
from replayer.engine.plan import Step

__all__ = ["BATCH", "CREDIT", "LOOKAHEAD_S", "Feeder"]

LOOKAHEAD_S = 3.0  # timed modes: how far ahead of its due time a step is sent
CREDIT = 10_000  # steps a worker may hold, dealt and not finished (every mode)
BATCH = 200  # steps per message at most
POLL_S = 0.01
YIELD_EVERY_S = 0.02  # dealing yields to the master's other greenlets at least this often


class Feeder:
    def __init__(self, items: Iterable[tuple[int, Step] | None],
                 send: Callable[[int, list[Step]], None], workers: int, *, t0: float,
                 timed: bool, lookahead_s: float = LOOKAHEAD_S, credit: int = CREDIT,
                 time_limit: float | None = None, clock: Clock = GEVENT_CLOCK) -> None:
        self.items = items
        self.send = send
        self.t0 = t0  # the start, on ``clock``
        self.timed = timed
        self.lookahead_s = lookahead_s
        self.credit = credit
        self.time_limit = time_limit  # s after t0: nothing more is dealt (--duration)
        self.clock = clock
        self.dealt = [0] * workers
        self.finished = [0] * workers
        self.batches: list[list[Step]] = [[] for _ in range(workers)]
        self.stopping = False
        self.done = False  # every step was sent (or the feeder was stopped)
        self.first_sent_at: float | None = None  # clock time of the first batch sent

    def stop(self) -> None:
        self.stopping = True

    def add_finished(self, worker: int, n: int) -> None:
        """Credits back: ``n`` of ``worker``'s steps were sent and answered (or not sent)."""
        self.finished[worker] += n

    def outstanding(self, w: int) -> int:
        return self.dealt[w] - self.finished[w]

    def run(self) -> None:
        now, sleep = self.clock.now, self.clock.sleep
        last_yield = now()
        try:
            for item in self.items:
                if self.stopping or self._past_limit(now()):
                    break
                if item is None:  # the source paused: send what is gathered
                    self._flush_all()
                    continue
                w, step = item
                while not self._may_send(w, step, now()):
                    self._flush_all()
                    sleep(POLL_S)
                    if self.stopping or self._past_limit(now()):
                        return
                self.dealt[w] += 1
                batch = self.batches[w]
                batch.append(step)
                if len(batch) >= BATCH:
                    self._flush(w)
                if now() - last_yield >= YIELD_EVERY_S:  # a real sleep: the hub polls I/O and
                    sleep(0.001)  # timers (heartbeats, shipments, relayed values, the loop)
                    last_yield = now()
            self._flush_all()
        finally:
            self.done = True

    def _past_limit(self, t: float) -> bool:
        return self.time_limit is not None and t - self.t0 >= self.time_limit

    def _may_send(self, w: int, step: Step, t: float) -> bool:
        if self.outstanding(w) >= self.credit:
            return False
        return not self.timed or step.due <= t - self.t0 + self.lookahead_s

    def _flush(self, w: int) -> None:
        batch = self.batches[w]
        if batch:
            self.batches[w] = []
            if self.first_sent_at is None:
                self.first_sent_at = self.clock.now()
            self.send(w, batch)

    def _flush_all(self) -> None:
        for w in range(len(self.batches)):
            self._flush(w)
