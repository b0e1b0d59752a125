"""One replayed request's result, and the two rules every reader of results shares.

A worker makes one ``Result`` per request it sent (``replayer.engine.pacing.send_step``) and
folds it at once into its summaries (``replayer.judge.summary``, ``aggregate``); baseline noise
(``noise``) reads it too, by field name. ``is_error`` is what counts as an error, for every
reader; percentiles come from ``replayer.judge.sketch``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Result", "is_error"]


class Result(NamedTuple):
    """What happened to one request. A NamedTuple: cheap to build on the worker's hot path and
    sent to the master as a msgpack array in this field order (``replayer.engine.wire``)."""

    idx: int  # the step's position in recorded order (Step.idx)
    worker: int
    due: float  # s after the start
    sent: float  # s after the start
    lag_ms: float  # sent - due
    wait_ms: float  # part of the lag spent waiting for the previous answer on the connection
    latency_ms: float
    status: int  # 0: no answer
    error: str | None  # why there was no answer (transport failure, unsendable request)
    endpoint: str
    status_ok: bool  # status equals the recorded one
    body_ok: bool | None  # None: not compared (status differs, recorded body cut, or ignored)
    diffs: list[str]  # JSON paths where the body differs (at most compare.MAX_DIFFS)
    iteration: int  # loop iteration (0 unless --loop or ramp)
    body: bytes | None = None  # the answer, only in baseline runs (learning noise)

    @property
    def failed(self) -> bool:
        return is_error(self.status, self.error)


def is_error(status: int, error: str | None) -> bool:
    """An error is a request with no answer (``error`` says why) or an answer of 500 or more."""
    return error is not None or status >= 500
