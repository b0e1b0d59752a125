"""Kernel monotonic timestamps -> wall-clock time, for record timestamps and connection ids."""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """Turns kernel monotonic timestamps into wall-clock ns; the offset is refreshed by
    ``sync()`` (the capture loop calls it every second)."""

    def __init__(self, wall=time.time_ns, mono=time.monotonic_ns) -> None:
        self._wall, self._mono = wall, mono
        self.sync()

    def sync(self) -> None:
        self.offset = self._wall() - self._mono()

    def mono(self) -> int:
        return self._mono()

    def to_wall(self, mono_ns: int) -> int:
        return mono_ns + self.offset
