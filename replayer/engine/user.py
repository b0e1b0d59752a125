"""The Locust user of a replay worker: ``ReplayUser``.

One ``ReplayUser`` per worker takes the run (``environment.rewind``, a ``RunState``), waits for
the start time, and replays the steps the master deals to this worker as they arrive
(``replayer.engine.shard.Shard``: one greenlet and one keep-alive connection per captured
connection). Each result is folded into the worker's ``Aggregator`` (per endpoint and second:
counts, latency sketches, mismatches; ``replayer.judge.aggregate``), which is shipped to the
master every ``SHIP_EVERY_S`` and forgotten; nothing is kept per request. When the master says
no more steps will come (``rewind_end``) and every queue has drained, the last shipment and
``rewind_done`` go out and the user stops.

The HTTP client is not FastHttpSession: it sends a dict of headers (no repeated names), adds
``Accept-Encoding``, keeps cookies and follows redirects; a replay must send the recorded
headers and nothing else. geventhttpclient's ``HTTPClient`` itself cost more Python per request
than the syscalls did; ``replayer.engine.http1`` builds each request's bytes once (with that
client's own builder) and reads answers with httptools. Requests are still reported through
``events.request``, so Locust's own statistics and CSVs see every one.
"""

from __future__ import annotations

import os
import time

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from replayer.engine.live_metrics import LATENCY_BUCKETS  # the live histogram's bounds
from replayer.engine.correlation import CorrelatedConnection
from replayer.engine.http1 import Connection
from replayer.engine.shard import Shard
from replayer.engine.state import RunState
from replayer.engine.wire import MSG_DONE, MSG_SUMMARY, Settings
from replayer.judge.aggregate import Aggregator
from replayer.judge.compare import Comparer
from replayer.judge.noise import BaselineSpill

__all__ = ["SHIP_EVERY_S", "ReplayUser"]

SHIP_EVERY_S = 0.25  # a shipment is small (summaries), and its "finished" count is the credits


class ReplayUser(User):
    """Replays what the master deals to this worker, then reports done and stops."""

    wait_time = constant(0)

    @task
    def replay(self) -> None:
        state: RunState = self.environment.rewind
        if state.claimed:  # one user per worker replays; an extra one would idle
            raise StopUser()
        state.claimed = True
        runner = self.environment.runner
        state.started.wait()
        cfg = state.settings
        t0 = time.monotonic() + (state.t0_wall - time.time())
        agg = Aggregator(timed=cfg.timed, bounds=LATENCY_BUCKETS,
                         step_of=cfg.ramp.step_of if cfg.ramp is not None else None)
        spill = None
        sink = agg.add
        if cfg.baseline_pass:
            spill = BaselineSpill(cfg.spill_dir or os.getcwd(), state.worker, cfg.baseline_pass)

            def sink(r, _add=agg.add, _spill=spill.add):
                _add(r)
                _spill(r)
        corr = state.correlation
        if corr is not None:  # correlation hook: mismatches counted, explained or not
            if cfg.correlate.get("shift_time"):
                corr.set_offset(int(state.t0_wall * 1e9) - cfg.correlate["first_ns"])

            def sink(r, _inner=sink, _judged=corr.judged):
                _judged(r)
                _inner(r)
        comparer = Comparer(cfg.ignore, cfg.noise, keep_bodies=cfg.baseline_pass > 0)
        shard = Shard(_client_factory(cfg, corr), t0, sink, worker=state.worker, comparer=comparer,
                      fire=self.environment.events.request.fire, idle_s=cfg.idle_s,
                      limit=state.limit, hooks=state.hooks)
        pending, state.steps = state.steps, []
        state.shard = shard  # no yield between these lines: nothing arrives in between
        shard.add(pending)
        shipped = [0]  # unsent steps already counted as finished in a shipment
        shipper = gevent.spawn(_ship, runner, state.worker, agg, shard, spill, shipped)
        state.ended.wait()
        shard.end()
        state.shard = None  # the run is over: its shard takes nothing more
        shipper.kill()
        _ship_once(runner, state.worker, agg, shard, spill, shipped)
        if spill is not None:
            spill.close()
        done = {"worker": state.worker, "crashed": shard.crashed, "unsent": shard.unsent}
        if corr is not None:  # correlation hook: the Correlator's counters
            done["correlation"] = corr.summary()
        runner.send_message(MSG_DONE, done)
        state.finished = True
        raise StopUser()


def _client_factory(cfg: Settings, corr=None):
    if corr is not None:  # correlation hook: the Correlator between pacing and socket
        return lambda: CorrelatedConnection(Connection(cfg.target, cfg.timeout), corr)
    return lambda: Connection(cfg.target, cfg.timeout)


def _ship_once(runner, worker: int, agg: Aggregator, shard: Shard, spill,
               shipped: list[int]) -> None:
    data = agg.take()
    data["finished"] += shard.unsent - shipped[0]  # credits: unsent steps are finished too
    shipped[0] = shard.unsent
    data["worker"] = worker
    data["noise"] = spill.take() if spill is not None else None
    if data["finished"] or data["cells"] or data["noise"]:
        runner.send_message(MSG_SUMMARY, data)


def _ship(runner, worker: int, agg: Aggregator, shard: Shard, spill,
          shipped: list[int]) -> None:
    while True:
        gevent.sleep(SHIP_EVERY_S)
        _ship_once(runner, worker, agg, shard, spill, shipped)
