"""Exit codes of rewind's commands: what a script or Jenkins reads from each one.

One enum per command, in one module, because other components act on them: Jenkins and
``rewind-launch`` read ``rewind-replay``'s verdict, the launcher's master Pod passes it on, a
Kubernetes restart policy reads the sidecar's. 0, 1 and 2 mean the same thing everywhere (done,
failed, bad arguments); 3 and above are each command's own.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ArchiveExit", "CaptureExit", "InspectExit", "LaunchExit", "ReplayExit", "WorkerExit"]


class CaptureExit(IntEnum):
    """``rewind-capture``."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    PROBE = 3  # the probe could not be loaded (privileges, seccomp, kernel)
    NATIVE = 4  # the native extension (sidecar.capture._native) is not built


class ArchiveExit(IntEnum):
    """``rewind-archive``."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    FOLDER = 3  # the archive folder cannot be used
    WRITES = 4  # segment writes keep failing (disk full, read-only)


class InspectExit(IntEnum):
    """``rewind-inspect``."""

    OK = 0
    FAILURE = 1
    USAGE = 2


class ReplayExit(IntEnum):
    """``rewind-replay``: the verdict."""

    OK = 0  # replayed, thresholds passed (ramp: at least the first step held the SLO)
    FAILED = 1  # thresholds failed (ramp: even the first step broke the SLO)
    USAGE = 2  # bad arguments or input
    TARGET = 3  # target unreachable
    SOURCE = 4  # source unreachable (Redis)
    RUN = 5  # the run itself failed (a worker died, the run overran)


class LaunchExit(IntEnum):
    """``rewind-launch``: ``rewind-replay``'s codes passed through, and its own."""

    USAGE = 2
    NO_VERDICT = 6  # the run ended without the master's verdict


class WorkerExit(IntEnum):
    """``rewind-replay-worker``."""

    OK = 0
    USAGE = 2
    NO_MASTER = 3  # no master answered
    MASTER_GONE = 4  # the master went away during the run
