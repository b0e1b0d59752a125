"""Worker processes on this machine (``rewind-replay --workers N``): start, watch, stop.

Each runs ``python -m replayer.engine.worker`` in its own session (a Ctrl-C at the terminal
reaches the master only, which then ends the run in order: the workers finish and send their
results), with its output in ``WORKDIR/worker-N.log``; a worker that exits early is a
``RunError`` carrying the end of its log. ``rewind-replay`` starts them first thing, before its
own imports (``replayer.replay.cli``): a worker's start-up (Python, gevent, Locust) is most of
the time to the first request, and the two overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["LocalWorkers", "RunError"]


class RunError(Exception):
    """The run could not be carried out: a worker did not start, died, or the run overran."""


class LocalWorkers:
    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []

    def start(self, n: int, port: int) -> None:
        for w in range(n):
            with open(self._log(w), "wb") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "replayer.engine.worker", "--master-host", "127.0.0.1",
                     "--master-port", str(port), "--log-format", "json"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))

    def check(self) -> None:
        """Raise ``RunError`` when a worker process has exited."""
        for w, p in enumerate(self.procs):
            if p.poll() is not None:
                with open(self._log(w), errors="replace") as f:
                    tail = f.read()[-2000:]
                raise RunError(f"worker process {w} exited with code {p.returncode}:\n{tail}")

    def wait(self, timeout: float = 10) -> None:
        """Wait for every worker to exit (the master quit), killing one that does not."""
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self) -> None:
        """Kill every worker still running (the run they were started for never began)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def _log(self, w: int) -> str:
        return os.path.join(self.workdir, f"worker-{w}.log")
