"""The replay's steps: a ``Step`` is one request with the time it is due and what the recording
answered; ``make_step`` builds one from a record after the rules, ``endpoint_name`` names its
endpoint. A run deals steps as it reads the range (``replayer.engine.dealer.Dealer``): every
captured connection goes to exactly one worker, whole and in order, so no request is sent twice
or skipped. ``build_plan`` collects one pass of a list of records per worker (tests, tools).

Schedules (``Schedule.mode``):
  recorded  due = (capture time - first capture time) / speed
  rps       due = k / rate for the k-th step in recorded order (all connections together)
  max       due = 0: every connection sends its next request as soon as the last one is answered
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from replayer.engine.rewrite import Request
from sidecar.contract.record import Record

__all__ = ["Plan", "Schedule", "Step", "endpoint_name", "make_step"]

_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F-]{16,}|.*\d.*)$")


@dataclass(frozen=True, slots=True)
class Schedule:
    mode: str = "recorded"  # recorded | rps | max
    speed: float = 1.0  # recorded: offsets are divided by this
    rate: float = 0.0  # rps: requests a second, all workers together


@dataclass(slots=True)
class Step:
    idx: int  # position in recorded order among the steps that are sent
    conn: str
    due: float  # seconds after the start
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    endpoint: str
    rec_status: int
    rec_body: bytes
    rec_body_ok: bool  # False when the recorded response body was cut: do not compare it
    version: str = "1.1"  # HTTP version of the request line, as recorded ("1.0" or "1.1")
    iteration: int = 0  # loop iteration (0 unless --loop or ramp); due already includes it
    corr: list | None = None  # correlation hook: what its answer makes and its request needs
    # (replayer/engine/correlation/stepwire.py); None for most steps


@dataclass(slots=True)
class Plan:
    shards: list[list[Step]]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> records not sent
    span: float = 0.0  # seconds from the first due time to one interval after the last

    @property
    def steps(self) -> int:
        return sum(len(s) for s in self.shards)

    @property
    def connections(self) -> int:
        return sum(len({s.conn for s in shard}) for shard in self.shards)


_FOLDED: dict[str, str] = {}  # path -> folded path, a cache (cleared when it holds _CACHE_MAX)
_CACHE_MAX = 50_000


def endpoint_name(method: str, target: str) -> str:
    """``GET /users/u42/reactions?x=1`` -> ``GET /users/:id/reactions``: ids folded, query cut."""
    path = target.split("?", 1)[0]
    folded = _FOLDED.get(path)
    if folded is None:
        if len(_FOLDED) >= _CACHE_MAX:
            _FOLDED.clear()
        parts = [":id" if p and _ID_SEGMENT.match(p) else p for p in path.split("/")]
        folded = _FOLDED[path] = "/".join(parts) or "/"
    return f"{method} {folded}"


def make_step(idx: int, r: Record, req: Request, due: float) -> Step:
    """The step that sends ``req`` (``r`` after the rules) at ``due``, judged against ``r``'s
    answer."""
    return Step(idx=idx, conn=r.conn, due=due, method=req.method, target=req.target,
                headers=req.headers, body=req.body, endpoint=endpoint_name(req.method, req.target),
                rec_status=r.status, rec_body=r.resp_body, rec_body_ok=not r.resp_truncated,
                version=r.version)
