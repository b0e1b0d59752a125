"""The progress line the master logs every ``--progress-every`` seconds: ``snapshot``."""

from __future__ import annotations

from replayer.engine.ramp import Ramp
from replayer.judge.result import Result, nearest_rank

__all__ = ["snapshot"]


def snapshot(results: list[Result], seen: int, elapsed: float, every: float,
             ramp: Ramp | None = None) -> dict:
    """Progress ``elapsed`` s after the start: requests/s and lag p99 of the results since
    ``seen`` (the last ``every`` s), totals of all."""
    recent = results[seen:]
    lag_p99 = nearest_rank(sorted(r.lag_ms for r in recent), 99)
    snap = {
        "elapsed_s": round(elapsed, 1),
        "sent": len(results),
        "rps": round(len(recent) / every, 1),
        "errors": sum(1 for r in results if r.failed),
        "lag_p99_ms": None if lag_p99 is None else round(lag_p99, 2),
    }
    if ramp is not None:
        k = ramp.step_of(max(0.0, elapsed))
        snap.update(ramp_step=f"{k + 1}/{len(ramp.rates)}", ramp_rps=ramp.rates[k])
    return snap
