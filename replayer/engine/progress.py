"""The progress line the master logs every ``--progress-every`` seconds: ``Progress.tick``.

Requests/s and lag p99 are those of the last interval; sent and errors are totals. For a finite
range the line has an ETA (``eta_s``): from the share of the planned steps finished when the
number is known (a ramp, or a loop after its first pass), else from the share of the range read
(``fraction``: bytes of an exported file, or the capture time reached in the window).
"""

from __future__ import annotations

from collections.abc import Callable

from replayer.engine.ramp import Ramp
from replayer.judge import sketch

__all__ = ["Progress", "eta"]


def eta(elapsed: float, done: float | None) -> float | None:
    """Seconds left when a share ``done`` (0-1) took ``elapsed`` s; None when unknown."""
    if done is None or done <= 0 or elapsed <= 0:
        return None
    return round(max(0.0, elapsed * (1 - min(done, 1.0)) / done), 1)


class Progress:
    def __init__(self, ramp: Ramp | None, planned: Callable[[], int | None],
                 fraction: Callable[[], float | None], emit: Callable[[dict], None] | None) -> None:
        self.ramp = ramp
        self.planned = planned
        self.fraction = fraction
        self.emit = emit
        self.next_at: float | None = None
        self.seen = 0
        self.last_elapsed = 0.0

    def tick(self, totals, elapsed: float, now: float, every: float) -> None:
        """Emit a line when ``every`` s passed since the last one (``now``: a monotonic time)."""
        if self.emit is None:
            return
        if self.next_at is None:
            self.next_at = now + every
            return
        if now < self.next_at:
            return
        self.next_at = now + every
        self.emit(self.snapshot(totals, elapsed, every))

    def snapshot(self, totals, elapsed: float, every: float) -> dict:
        lag = totals.take_recent_lag()
        p99 = sketch.quantile(lag, 99)
        snap = {
            "elapsed_s": round(elapsed, 1),
            "sent": totals.sent,
            "rps": round((totals.sent - self.seen) / max(every, elapsed - self.last_elapsed), 1),
            "errors": totals.errors,
            "lag_p99_ms": None if p99 is None else round(p99, 2),
        }
        self.seen = totals.sent
        self.last_elapsed = elapsed
        planned = self.planned()
        done = totals.finished / planned if planned else self.fraction()
        left = eta(elapsed, done)
        if left is not None:
            snap["eta_s"] = left
        if self.ramp is not None:
            k = self.ramp.step_of(max(0.0, elapsed))
            snap.update(ramp_step=f"{k + 1}/{len(self.ramp.rates)}", ramp_rps=self.ramp.rates[k])
        return snap
