"""The replay plan: records -> filtered, rewritten, scheduled steps, split between workers.

``build_plan(records, rules, schedule, workers)`` returns a ``Plan``: one list of ``Step``s per
worker. A step is one request with the time it is due (seconds after the start) and what the
recording answered. Every captured connection goes to exactly one worker, whole and in order,
so no request is sent twice or skipped; connections are dealt largest first to the least
loaded worker, which balances requests and is the same on every run.

Schedules (``Schedule.mode``):
  recorded  due = (capture time - first capture time) / speed
  rps       due = k / rate for the k-th step in recorded order (all connections together)
  max       due = 0: every connection sends its next request as soon as the last one is answered
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from replayer.engine.rewrite import Request, Rules
from sidecar.contract.record import Record

__all__ = ["Plan", "Schedule", "Step", "build_plan", "endpoint_name", "make_step"]

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


def endpoint_name(method: str, target: str) -> str:
    """``GET /users/u42/reactions?x=1`` -> ``GET /users/:id/reactions``: ids folded, query cut."""
    path = target.split("?", 1)[0]
    parts = [":id" if p and _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return f"{method} {'/'.join(parts) or '/'}"


def make_step(idx: int, r: Record, req: Request, due: float) -> Step:
    """The step that sends ``req`` (``r`` after the rules) at ``due``, judged against ``r``'s
    answer."""
    return Step(idx=idx, conn=r.conn, due=due, method=req.method, target=req.target,
                headers=req.headers, body=req.body, endpoint=endpoint_name(req.method, req.target),
                rec_status=r.status, rec_body=r.resp_body, rec_body_ok=not r.resp_truncated,
                version=r.version)


def build_plan(records: Iterable[Record], rules: Rules, schedule: Schedule, workers: int) -> Plan:
    """Filter and rewrite ``records`` (capture order), schedule them, split them by connection."""
    steps: list[Step] = []
    skipped: dict[str, int] = {}
    first_ns = None
    for r in records:
        req = rules.apply(r)
        if not isinstance(req, Request):
            skipped[req] = skipped.get(req, 0) + 1
            continue
        if first_ns is None:
            first_ns = r.ts_ns
        k = len(steps)
        if schedule.mode == "recorded":
            due = (r.ts_ns - first_ns) / 1e9 / schedule.speed
        elif schedule.mode == "rps":
            due = k / schedule.rate
        else:
            due = 0.0
        steps.append(make_step(k, r, req, due))
    span = 0.0
    if steps:
        last = steps[-1].due
        span = last + (last / (len(steps) - 1) if len(steps) > 1 else 1.0)
    return Plan(_deal(steps, workers), skipped, span)


def _deal(steps: list[Step], workers: int) -> list[list[Step]]:
    by_conn: dict[str, list[Step]] = {}
    for s in steps:
        by_conn.setdefault(s.conn, []).append(s)
    load = [(0, w) for w in range(workers)]
    shards: list[list[Step]] = [[] for _ in range(workers)]
    for conn in sorted(by_conn, key=lambda c: (-len(by_conn[c]), c)):
        n, w = heapq.heappop(load)
        shards[w].extend(by_conn[conn])
        heapq.heappush(load, (n + len(by_conn[conn]), w))
    for shard in shards:
        shard.sort(key=lambda s: s.idx)
    return shards
