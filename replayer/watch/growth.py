"""Growth per hour of a sampled series: the least-squares slope, ``growth_per_hour(t, v)``.

A least-squares line over every sample (``statistics.linear_regression``) rather than
(end - start) / duration: every sample counts, so one high or low sample (a garbage collection,
a cache fill) moves it less than half as much even at either end, and less in the middle, while
a steady leak shows as the slope.
"""

from __future__ import annotations

import statistics

__all__ = ["growth_per_hour"]


def growth_per_hour(t: list[float], v: list[float]) -> float | None:
    """Slope of ``v`` over ``t`` (seconds), times 3600; None with fewer than two distinct times."""
    if len(t) < 2 or len(set(t)) < 2:
        return None
    return statistics.linear_regression(t, v).slope * 3600.0
