"""A local process's resident memory from ``/proc/PID/status``: ``PidSource``.

``VmRSS`` is what the kernel counts as resident (anonymous, file and shared memory pages),
the number ``ps`` and ``top`` show. A process that exits raises ``SourceEnded`` once; the
sampler reports it and stops asking.
"""

from __future__ import annotations

import os

__all__ = ["PidSource", "SourceEnded", "SourceFailed"]


class SourceFailed(Exception):
    """One sample could not be taken (counted and logged; the next one is tried)."""


class SourceEnded(Exception):
    """The source will give no more samples (the process exited)."""


class PidSource:
    kind = "pid"

    def __init__(self, pid: int, proc: str = "/proc") -> None:
        self.pid = pid
        self.proc = proc
        self.name = _comm(os.path.join(proc, str(pid), "comm"))
        self.label = f"pid {pid}"

    def sample(self) -> list[tuple[str, float, str | None]]:
        """[(series label, RSS in bytes, "bytes")]; raises SourceEnded when the pid is gone."""
        path = os.path.join(self.proc, str(self.pid), "status")
        try:
            with open(path, "rb") as f:
                text = f.read()
        except (FileNotFoundError, ProcessLookupError):
            raise SourceEnded(f"pid {self.pid} ({self.name}) exited") from None
        except OSError as exc:
            raise SourceFailed(f"{path}: {exc.strerror}") from None
        for line in text.splitlines():
            if line.startswith(b"VmRSS:"):
                kib = int(line.split()[1])  # "VmRSS:   12345 kB"
                return [(f"pid {self.pid} ({self.name}) rss", kib * 1024.0, "bytes")]
        # a zombie has a status file without VmRSS: it no longer holds memory
        raise SourceEnded(f"pid {self.pid} ({self.name}) exited (no VmRSS: a zombie)")


def _comm(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"
