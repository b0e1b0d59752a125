"""A worker's run state lives on its Locust environment (replayer/engine/state.py), not in a
module: two runs in one process each replay, and neither sees the other's steps."""

from __future__ import annotations

import time

import pytest

from replayer.engine.state import RunState
from replayer.engine.wire import MSG_DONE, Settings
from tests.support.replay import locust_unpatched

with locust_unpatched():
    from locust.env import Environment
    from locust.exception import StopUser

    from replayer.engine.user import ReplayUser


def run_once(env: Environment) -> list[dict]:
    """One ReplayUser run on ``env`` (an empty share, so nothing goes out); the done messages."""
    done: list[dict] = []
    runner = env.create_local_runner()
    runner.register_message(MSG_DONE, lambda msg, **_kw: done.append(msg.data))
    with pytest.raises(StopUser):
        ReplayUser(env).replay()
    return done


def test_two_runs_in_one_process_do_not_share_state():
    """A second environment's user replays after the first one's did (the claim of a run is the
    run's), each run says done with its own worker index, and steps added to one run's state do
    not appear in the other's."""
    envs = [Environment(user_classes=[ReplayUser]) for _ in range(2)]
    for i, env in enumerate(envs):
        env.rewind = RunState(settings=Settings(target="http://127.0.0.1:9"), worker=i,
                              t0_wall=time.time())
        env.rewind.started.set()
    for env in envs:
        env.rewind.ended.set()  # no steps will come
    assert [run_once(env) for env in envs] == [[{"worker": 0, "crashed": [], "unsent": 0}],
                                               [{"worker": 1, "crashed": [], "unsent": 0}]]
    assert all(env.rewind.finished and env.rewind.claimed for env in envs)
    envs[0].rewind.add_steps(["a step"])
    assert envs[1].rewind.steps == []
