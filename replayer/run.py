"""A distributed replay on this machine: a Locust master (this process) and N worker processes.

``run_plan(plan, cfg)`` writes each worker's shard to ``cfg.workdir``, starts the workers
(``python -m replayer.worker``), waits until all of them are connected, tells them one start
time, lets Locust spawn one ``ReplayUser`` per worker, gathers every result they send, and
returns when all workers said done (or a worker died, or the deadline passed). In Kubernetes
the workers are Pods of a Job instead of child processes (issue 5); nothing else changes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from replayer.plan import Plan, write_steps
from replayer.ramp import Ramp

__all__ = ["RunConfig", "RunError", "RunResult", "run_plan"]


class RunError(Exception):
    """The run could not be carried out: a worker did not start, died, or the run overran."""


@dataclass(slots=True)
class RunConfig:
    target: str
    workdir: str
    ignore: list[str] = field(default_factory=list)
    timeout: float = 30.0  # per request
    loop: bool = False
    duration: float | None = None
    start_delay: float = 2.0  # seconds between "all connected" and the first due time
    connect_timeout: float = 60.0  # for workers to connect to the master
    progress_every: float = 5.0
    ramp: Ramp | None = None  # ramp mode: due times come from the ramp (see replayer/ramp.py)
    # called about every 0.1 s with (results so far, s since the start); a number it returns is
    # a time (s after the start) from which the workers send nothing more
    monitor: Callable[[list, float], float | None] | None = None


@dataclass(slots=True)
class RunResult:
    results: list[tuple] = field(default_factory=list)
    wall_s: float = 0.0
    stats: object = None  # Locust's RequestStats (aggregated from the workers)


def run_plan(plan: Plan, cfg: RunConfig, *, progress: Callable[[dict], None] | None = None
             ) -> RunResult:
    from locust.env import Environment

    from replayer.user import (MSG_DONE, MSG_RESULTS, MSG_START, MSG_STARTED, MSG_STOP,
                               ReplayUser)

    n = len(plan.shards)
    env = Environment(user_classes=[ReplayUser])
    port = _free_port()
    runner = env.create_master_runner("127.0.0.1", port)
    out = RunResult(stats=env.stats)
    done: dict[int, dict] = {}
    acked: set[int] = set()
    runner.register_message(MSG_STARTED, lambda msg, **_: acked.add(msg.data["worker"]))
    runner.register_message(MSG_RESULTS, lambda msg, **_: out.results.extend(msg.data))
    runner.register_message(MSG_DONE, lambda msg, **_: done.__setitem__(msg.data["worker"], msg.data))
    procs = []
    try:
        for w, shard in enumerate(plan.shards):
            procs.append(_start_worker(w, shard, plan, cfg, port))
        deadline = time.monotonic() + cfg.connect_timeout
        while len(runner.clients.ready) < n:
            _check_alive(procs, cfg.workdir)
            if time.monotonic() > deadline:
                raise RunError(f"only {len(runner.clients.ready)} of {n} workers connected "
                               f"within {cfg.connect_timeout:.0f} s")
            runner.greenlet.join(0.05)
        t0 = time.time() + cfg.start_delay
        while len(acked) < n:  # repeated: a worker may not listen for it yet (see worker.py)
            runner.send_message(MSG_START, {"t0": t0})
            runner.greenlet.join(0.1)
            _check_alive(procs, cfg.workdir)
            if time.time() > t0 - 0.2:
                raise RunError(f"only {len(acked)} of {n} workers took the start time in time")
        runner.start(n, spawn_rate=max(n, 100))
        last_due = cfg.duration if cfg.duration is not None else plan.span
        deadline = time.monotonic() + cfg.start_delay + last_due + cfg.timeout + 60
        next_progress = time.monotonic() + cfg.progress_every
        seen = 0
        stopped = False
        while len(done) < n:
            runner.greenlet.join(0.1)
            _check_alive(procs, cfg.workdir)
            if cfg.monitor is not None and not stopped:
                stop = cfg.monitor(out.results, time.time() - t0)
                if stop is not None:
                    runner.send_message(MSG_STOP, {"at": stop})
                    stopped = True
            now = time.monotonic()
            if now > deadline:
                raise RunError(f"the run overran its deadline; {len(done)} of {n} workers done")
            if progress and now >= next_progress:
                progress(_snapshot(out.results, seen, t0, cfg.progress_every))
                seen = len(out.results)
                next_progress = now + cfg.progress_every
        crashed = [c for d in done.values() for c in d.get("crashed", [])]
        if crashed:
            raise RunError(f"replay greenlets crashed: {crashed[:3]}")
        out.wall_s = time.time() - t0
        runner.greenlet.join(0.5)  # let the workers' last stats reports arrive
        return out
    finally:
        runner.quit()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _start_worker(w: int, shard, plan: Plan, cfg: RunConfig, port: int) -> subprocess.Popen:
    steps = os.path.join(cfg.workdir, f"steps-{w}.jsonl")
    write_steps(steps, shard)
    conf = os.path.join(cfg.workdir, f"worker-{w}.json")
    with open(conf, "wb") as f:
        f.write(orjson.dumps({
            "target": cfg.target, "worker": w, "steps": steps, "ignore": cfg.ignore,
            "timeout": cfg.timeout, "loop": cfg.loop, "duration": cfg.duration,
            "span": plan.span, "ramp": cfg.ramp.to_json() if cfg.ramp else None,
            "planned": plan.steps, "master_host": "127.0.0.1", "master_port": port}))
    with open(os.path.join(cfg.workdir, f"worker-{w}.log"), "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "replayer.worker", conf],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def _check_alive(procs: list[subprocess.Popen], workdir: str) -> None:
    for w, p in enumerate(procs):
        if p.poll() is not None:
            with open(os.path.join(workdir, f"worker-{w}.log"), errors="replace") as f:
                tail = f.read()[-2000:]
            raise RunError(f"worker {w} exited with code {p.returncode}:\n{tail}")


def _snapshot(results: list[tuple], seen: int, t0: float, every: float) -> dict:
    recent = results[seen:]
    lags = sorted(r[4] for r in recent)
    return {
        "elapsed_s": round(time.time() - t0, 1),
        "sent": len(results),
        "rps": round(len(recent) / every, 1),
        "errors": sum(1 for r in results if r[8] is not None or r[7] >= 500),
        "lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
