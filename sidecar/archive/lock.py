"""Which archivers of an archive folder are alive: one ``flock(2)``-ed file per consumer.

A running archiver holds ``consumers/<name>.lock`` for its whole life; the kernel releases it
when the process dies, however it dies (``kill -9`` included). A sibling that can take the lock
knows that consumer is dead, and holds the lock while it takes over the dead one's work, so the
dead consumer cannot come back half-way through. flock works across processes on one machine
and on NFSv4; archivers of one stream must share the archive folder (see docs/archive.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ConsumerBusy", "ConsumerLocks", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ConsumerBusy(Exception):
    """Another live archiver already uses this consumer name on this archive folder."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"consumer name {name!r} must be 1-128 letters, digits, '_', '-' or '.', not starting "
            "with '.' or '-' (e.g. the pod name, archiver-0)")
    return name


class ConsumerLocks:
    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "consumers"
        self._held: dict[str, int] = {}

    def path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.lock"

    def acquire(self, name: str, wait: float = 0.0) -> None:
        """Hold ``name``'s lock until ``release``; ConsumerBusy if still taken after ``wait`` s."""
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            fd = self._try(name)
            if fd is not None:
                self._held[name] = fd
                return
            if time.monotonic() >= deadline:
                raise ConsumerBusy(
                    f"consumer {name!r} is in use by another running archiver on {self.dir.parent} "
                    "(give each archiver its own --consumer)")
            time.sleep(0.1)

    def release(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)

    def known(self) -> set[str]:
        """Consumer names that have a lock file (alive or not)."""
        try:
            return {p.name[:-5] for p in self.dir.glob("*.lock")}
        except OSError:
            return set()

    @contextlib.contextmanager
    def if_dead(self, name: str) -> Iterator[bool]:
        """Yield True (holding its lock) when ``name`` has a lock file nobody holds."""
        if name in self._held or not self.path(name).exists():
            yield False
            return
        fd = self._try(name)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)

    def _try(self, name: str) -> int | None:
        fd = os.open(self.path(name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        return fd
