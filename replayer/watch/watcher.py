"""Watching around one run: ``Watcher(spec, log).start()`` ... ``stop() -> dict``.

The sampler runs in a thread of the master process (a greenlet once gevent patched it, as in
``rewind-replay``), started before the workers and stopped when the run ends; ``stop`` returns
what the report shows (``Sampler.to_json``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from replayer.watch.procfs import PidSource
from replayer.watch.prometheus import PromSource
from replayer.watch.sampler import SYSTEM_CLOCK, Clock, Sampler
from replayer.watch.spec import WatchSpec

__all__ = ["Watcher", "sources_of"]


def sources_of(spec: WatchSpec, proc: str = "/proc") -> list:
    out: list = [PidSource(pid, proc) for pid in spec.pids]
    if spec.prometheus:
        out += [PromSource(spec.prometheus, q, timeout=max(1.0, min(10.0, spec.interval)))
                for q in spec.queries]
    return out


class Watcher:
    def __init__(self, spec: WatchSpec, *, log: Callable[..., None] | None = None,
                 clock: Clock = SYSTEM_CLOCK, proc: str = "/proc") -> None:
        self.sampler = Sampler(sources_of(spec, proc), clock=clock, interval=spec.interval,
                               log=log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.started_wall: float | None = None  # epoch s: lines the samples up with the load

    def start(self) -> Watcher:
        self.started_wall = time.time()
        self._thread = threading.Thread(target=self._run, name="rewind-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.sampler.run(self._stop.is_set)
        except Exception as exc:  # reported in stop(): the replay itself goes on
            self.error = exc
            self.sampler.log("watch.crashed", error=repr(exc))

    def stop(self, load_t0: float | None = None) -> dict:
        """Stop sampling; what was seen. ``load_t0`` (epoch s of the run's start) gives
        ``load_starts_at_s``: the sample time at which the first request was due."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        out = self.sampler.to_json()
        out["error"] = None if self.error is None else repr(self.error)
        out["load_starts_at_s"] = (None if load_t0 is None or self.started_wall is None
                                   else round(load_t0 - self.started_wall, 3))
        return out
