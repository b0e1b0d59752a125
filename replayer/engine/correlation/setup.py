"""What a run's correlation is told (``CorrelateSettings``, inside the workers' ``Settings``) and
how a worker builds its ``Correlator`` from it (``build_correlator``).

The JWT key never crosses the master-worker channel: the settings name where it is
(``jwt_key_file`` or ``jwt_key_env``) and each worker reads it itself (local workers share the
master's files and environment; Pods need the same file or variable, see docs/correlate.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

from replayer.correlate.jwts import load_key
from replayer.engine.correlation.correlator import Correlator

__all__ = ["CorrelateSettings", "JwtKeyError", "build_correlator", "read_jwt_key"]


class JwtKeyError(ValueError):
    """The JWT key named by --jwt-key / --jwt-key-env cannot be read."""


@dataclass(slots=True)
class CorrelateSettings:
    wait_s: float = 60.0  # how long a request waits for a value's producing answer
    shift_time: bool = False  # --shift-time
    first_ns: int = 0  # capture time of the range's first record (the offset's origin)
    jwt_key_file: str | None = None
    jwt_key_env: str | None = None
    relay_all: bool = False  # more than one worker: every made value goes to the master

    def to_wire(self) -> dict:
        return asdict(self)

    @classmethod
    def from_wire(cls, d: dict | None) -> CorrelateSettings | None:
        return None if d is None else cls(**d)


def read_jwt_key(file: str | None, env: str | None):
    """The key material named by a file or an environment variable (None when neither)."""
    if file:
        try:
            with open(file, "rb") as f:
                return load_key(f.read())
        except OSError as exc:
            raise JwtKeyError(f"--jwt-key {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise JwtKeyError(f"--jwt-key {file}: not a usable key ({exc})") from None
    if env:
        value = os.environ.get(env)
        if not value:
            raise JwtKeyError(f"--jwt-key-env {env}: the variable is not set")
        return load_key(value.encode())
    return None


def build_correlator(cs: CorrelateSettings, *, wait_s: float | None = None,
                     relay: Callable | None = None) -> Correlator:
    key = read_jwt_key(cs.jwt_key_file, cs.jwt_key_env)
    corr = Correlator(wait_s=cs.wait_s if wait_s is None else wait_s, relay=relay,
                      capture_ns=cs.first_ns, jwt_key=key, jwt=cs.shift_time or key is not None)
    corr.relay_all = cs.relay_all
    return corr
