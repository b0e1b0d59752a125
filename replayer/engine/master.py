"""A distributed replay: a Locust master (this process) and N workers.

``run_plan(plan, cfg)`` binds the master, starts N worker processes on this machine
(``python -m replayer.engine.worker``) or, with ``cfg.external``, waits for N workers started elsewhere
(``rewind-replay-worker``, Pods in Kubernetes), gives each its index and settings and sends it its
shard of the plan over Locust messages (``replayer.engine.wire``), tells them one start time, lets
Locust spawn one ``ReplayUser`` per worker, gathers every result they send, and returns when all
workers said done (or a worker died, or the deadline passed). With ``cfg.follow`` (a
``replayer.engine.follow.Follower``) there is no plan: steps are read from the live stream and sent to
the workers as they arrive, until ``--duration`` or a stop request (SIGINT/SIGTERM).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent

from replayer.engine import wire
from replayer.engine.plan import Plan
from replayer.engine.ramp import Ramp

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
    ramp: Ramp | None = None  # ramp mode: due times come from the ramp (see replayer/engine/ramp.py)
    # called about every 0.1 s with (results so far, s since the start); a number it returns is
    # a time (s after the start) from which the workers send nothing more
    monitor: Callable[[list, float], float | None] | None = None
    external: bool = False  # wait for workers started elsewhere instead of starting them
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # 0: any free port (local workers only)
    follow: object = None  # a replayer.engine.follow.Follower: steps come from the live stream
    idle_s: float = 60.0  # follow: a replay connection idle this long is closed
    stop_requested: Callable[[], bool] | None = None  # True: stop sending, finish, report
    log: Callable[..., None] | None = None  # log(event, **fields)
    noise: dict[str, list[str]] | None = None  # endpoint -> noisy paths learned from a baseline
    keep_bodies: bool = False  # results carry the answer's body (baseline runs)


@dataclass(slots=True)
class RunResult:
    results: list[tuple] = field(default_factory=list)
    wall_s: float = 0.0
    stats: object = None  # Locust's RequestStats (aggregated from the workers)


def run_plan(plan: Plan, cfg: RunConfig, *, progress: Callable[[dict], None] | None = None
             ) -> RunResult:
    from locust.env import Environment
    from locust.runners import STATE_MISSING

    from replayer.engine.user import ReplayUser

    n = len(plan.shards)
    env = Environment(user_classes=[ReplayUser])
    port = cfg.bind_port or _free_port(cfg.bind_host)
    runner = env.create_master_runner(cfg.bind_host, port)
    out = RunResult(stats=env.stats)
    done: dict[int, dict] = {}
    configured: set[int] = set()
    loaded: dict[int, int] = {}
    acked: set[int] = set()
    runner.register_message(wire.MSG_CONFIGURED, lambda msg, **_: configured.add(msg.data["worker"]))
    runner.register_message(wire.MSG_LOADED,
                            lambda msg, **_: loaded.__setitem__(msg.data["worker"], msg.data["count"]))
    runner.register_message(wire.MSG_STARTED, lambda msg, **_: acked.add(msg.data["worker"]))
    runner.register_message(wire.MSG_RESULTS, lambda msg, **_: out.results.extend(msg.data))
    runner.register_message(wire.MSG_DONE,
                            lambda msg, **_: done.__setitem__(msg.data["worker"], msg.data))
    procs: list[subprocess.Popen] = []
    ids: list[str] = []

    def check() -> None:
        _check_alive(procs, cfg.workdir)
        for w, cid in enumerate(ids):
            node = runner.clients.get(cid)
            if node is None or node.state == STATE_MISSING:
                raise RunError(f"worker {w} ({cid}) went away (quit, or no heartbeat)")

    def wait_for(what: str, ok: Callable[[], bool], timeout: float, repeat=None) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if repeat is not None:
                repeat()
            runner.greenlet.join(0.1)
            check()
            if time.monotonic() > deadline:
                raise RunError(f"{what} within {timeout:.0f} s")
            if cfg.stop_requested is not None and cfg.stop_requested():
                raise RunError("stopped (signal) before the run started")

    try:
        if cfg.external:
            if cfg.log:
                cfg.log("replay.waiting_for_workers", workers=n, bind=f"{cfg.bind_host}:{port}")
        else:
            procs = [_start_worker(w, cfg, port) for w in range(n)]
        wait_for("not all workers connected", lambda: len(runner.clients.ready) >= n,
                 cfg.connect_timeout)
        ids = [c.id for c in runner.clients.ready][:n]
        settings = wire.settings_to_wire(
            target=cfg.target, ignore=cfg.ignore, timeout=cfg.timeout, loop=cfg.loop,
            duration=cfg.duration, span=plan.span, ramp=cfg.ramp, planned=plan.steps,
            follow=cfg.follow is not None, idle_s=cfg.idle_s, noise=cfg.noise,
            keep_bodies=cfg.keep_bodies)

        def send_config() -> None:
            for w, cid in enumerate(ids):
                if w not in configured:
                    runner.send_message(wire.MSG_CONFIG, {"worker": w, "settings": settings}, cid)
        wait_for("not all workers took their settings", lambda: len(configured) >= n, 30,
                 repeat=send_config)
        if cfg.follow is None:
            for w, cid in enumerate(ids):
                wire.send_steps(runner, cid, plan.shards[w])
                runner.send_message(wire.MSG_LOAD_END, {"count": len(plan.shards[w])}, cid)
            wait_for("not all workers received their share", lambda: len(loaded) >= n,
                     60 + plan.steps / 2000)
            wrong = {w: c for w, c in loaded.items() if c != len(plan.shards[w])}
            if wrong:
                raise RunError(f"workers received other step counts than sent: {wrong}")
        t0 = time.time() + cfg.start_delay

        def send_start() -> None:  # repeated: a worker may not listen for it yet
            if time.time() > t0 - 0.2:
                raise RunError(f"only {len(acked)} of {n} workers took the start time in time")
            runner.send_message(wire.MSG_START, {"t0": t0})
        wait_for("start", lambda: len(acked) >= n, cfg.start_delay + 1, repeat=send_start)
        runner.start(n, spawn_rate=max(n, 100))
        follower = None
        if cfg.follow is not None:
            gevent.sleep(max(0.0, t0 - time.time()))
            follower = gevent.spawn(cfg.follow.run, lambda w, steps: wire.send_steps(
                runner, ids[w], steps), t0)
        last_due = cfg.duration if cfg.duration is not None else plan.span
        deadline = None if follower else time.monotonic() + cfg.start_delay + last_due + cfg.timeout + 60
        next_progress = time.monotonic() + cfg.progress_every
        seen = 0
        stopped = False
        while len(done) < n:
            runner.greenlet.join(0.1)
            check()
            elapsed = time.time() - t0
            want_stop = cfg.stop_requested is not None and cfg.stop_requested()
            if follower is not None and deadline is None and (
                    want_stop or follower.dead
                    or (cfg.duration is not None and elapsed >= cfg.duration)):
                cfg.follow.stop()
                follower.join()
                if follower.exception is not None:
                    raise RunError(f"reading the live stream failed: {follower.exception!r}")
                runner.send_message(wire.MSG_END, {})
                deadline = time.monotonic() + cfg.timeout + 60
            if not stopped and follower is None:
                stop = cfg.monitor(out.results, elapsed) if cfg.monitor is not None else None
                if stop is None and want_stop:
                    stop = max(0.0, elapsed)
                if stop is not None:
                    runner.send_message(wire.MSG_STOP, {"at": stop})
                    stopped = True
                    deadline = min(deadline, time.monotonic() + cfg.timeout + 30)
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise RunError(f"the run overran its deadline; {len(done)} of {n} workers done")
            if progress and now >= next_progress and elapsed >= 0:
                progress(_snapshot(out.results, seen, t0, cfg.progress_every, cfg.ramp))
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


def _start_worker(w: int, cfg: RunConfig, port: int) -> subprocess.Popen:
    with open(os.path.join(cfg.workdir, f"worker-{w}.log"), "wb") as log:
        # its own session: a Ctrl-C at the terminal reaches the master only, which then ends
        # the run in order (the workers finish and send their results)
        return subprocess.Popen(
            [sys.executable, "-m", "replayer.engine.worker", "--master-host", "127.0.0.1",
             "--master-port", str(port), "--log-format", "json"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)


def _check_alive(procs: list[subprocess.Popen], workdir: str) -> None:
    for w, p in enumerate(procs):
        if p.poll() is not None:
            with open(os.path.join(workdir, f"worker-{w}.log"), errors="replace") as f:
                tail = f.read()[-2000:]
            raise RunError(f"worker process {w} exited with code {p.returncode}:\n{tail}")


def _snapshot(results: list[tuple], seen: int, t0: float, every: float,
              ramp: Ramp | None = None) -> dict:
    """Progress since the last snapshot: rps and lag p99 of the last ``every`` s, totals."""
    recent = results[seen:]
    lags = sorted(r[4] for r in recent)
    elapsed = time.time() - t0
    snap = {
        "elapsed_s": round(elapsed, 1),
        "sent": len(results),
        "rps": round(len(recent) / every, 1),
        "errors": sum(1 for r in results if r[8] is not None or r[7] >= 500),
        "lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))], 2) if lags else None,
    }
    if ramp is not None:
        k = ramp.step_of(max(0.0, elapsed))
        snap.update(ramp_step=f"{k + 1}/{len(ramp.rates)}", ramp_rps=ramp.rates[k])
    return snap


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
