"""The Locust user that replays one worker's share: ``ReplayUser``.

One ``ReplayUser`` runs on each worker. It reads the run's ``RunState`` from
``self.environment.rewind`` (put there by ``replayer.engine.worker``), waits for the start,
replays the share (``replayer.engine.pacing.replay_shard``; with ``--follow``, a
``replayer.engine.live.LiveShard`` fed as steps arrive), ships the results to the master every
0.2 s, says done and stops.

Why not FastHttpSession: it sends a dict of headers (no repeated names), adds
``Accept-Encoding``, keeps cookies and follows redirects; a replay must send the recorded
headers and nothing else. geventhttpclient's ``HTTPClient`` itself cost more Python per request
than the syscalls did; ``replayer.engine.http1`` builds each request's bytes once (with that
client's own builder) and reads answers with httptools. Requests are still reported through
``events.request``, so Locust's own statistics and CSVs see every one.
"""

from __future__ import annotations

import time

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from replayer.engine.http1 import Connection
from replayer.engine.live import LiveShard
from replayer.engine.pacing import replay_shard
from replayer.engine.state import RunState
from replayer.engine.wire import MSG_DONE, MSG_RESULTS, Settings
from replayer.judge.compare import Comparer

__all__ = ["ReplayUser"]

SHIP_EVERY_S = 0.2  # small batches: serializing a big one stalls the pacing for ms


class ReplayUser(User):
    """Replays this worker's share once (or in a loop), then reports done and stops."""

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
        out: list = []
        comparer = Comparer(cfg.ignore, cfg.noise, cfg.keep_bodies)
        fire = self.environment.events.request.fire
        shipper = gevent.spawn(_ship, runner, out)
        if cfg.follow:
            crashed = _follow(state, t0, out, comparer, fire)
        else:
            crashed = _replay(state, t0, out, comparer, fire)
        shipper.kill()
        _ship_once(runner, out)
        runner.send_message(MSG_DONE, {"worker": state.worker, "crashed": crashed})
        state.finished = True
        raise StopUser()


def _client_factory(cfg: Settings):
    return lambda: Connection(cfg.target, cfg.timeout)


def _replay(state: RunState, t0: float, out: list, comparer: Comparer, fire) -> list[str]:
    cfg = state.settings
    due_of = cfg.ramp.due_of(cfg.planned) if cfg.ramp is not None else None
    return replay_shard(state.steps, _client_factory(cfg), t0, out, worker=state.worker,
                        comparer=comparer, fire=fire, loop=cfg.loop, duration=cfg.duration,
                        span=cfg.span, due_of=due_of, stop_at=lambda: state.stop_at)


def _follow(state: RunState, t0: float, out: list, comparer: Comparer, fire) -> list[str]:
    live = LiveShard(_client_factory(state.settings), t0, out, worker=state.worker,
                     comparer=comparer, fire=fire, idle_s=state.settings.idle_s)
    pending, state.steps = state.steps, []
    state.live = live  # no yield between these lines: nothing arrives in between
    live.add(pending)
    state.ended.wait()
    live.end()
    return live.crashed


def _ship_once(runner, out: list) -> None:
    if out:
        batch = out[:]
        del out[:len(batch)]
        runner.send_message(MSG_RESULTS, batch)


def _ship(runner, out: list) -> None:
    while True:
        gevent.sleep(SHIP_EVERY_S)
        _ship_once(runner, out)
