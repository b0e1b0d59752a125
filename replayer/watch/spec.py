"""What a run watches: ``WatchSpec`` (from ``--watch-prometheus``/``--watch``/``--watch-pid``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WatchSpec"]


@dataclass(frozen=True, slots=True)
class WatchSpec:
    prometheus: str | None = None  # base URL, e.g. http://prometheus:9090
    queries: tuple[str, ...] = ()  # PromQL, each sampled as an instant query
    pids: tuple[int, ...] = ()  # local processes whose RSS is sampled
    interval: float = 10.0  # seconds between samples

    @property
    def any(self) -> bool:
        return bool(self.pids or (self.prometheus and self.queries))
