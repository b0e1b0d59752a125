"""Noise learned from a baseline (Diffy's idea, without three live instances): ``--baseline URL``.

The plan is replayed twice against the baseline (a deployment known to be good, e.g. the
release in production) with the answers' bodies kept. A body field that differs between the two
baseline runs, for the same request, is noise: a timestamp, a generated id, a random order. Its
path, with list indices folded to ``[*]``, is ignored for that endpoint when the candidate's
answers are compared with the recording (in addition to ``--ignore``). A body that is not JSON
and differs between the runs makes the whole body of that endpoint noise (``$``: not compared).

Memory stays bounded: in the first baseline run each worker writes every first-iteration
answer (status, answered or not, body) to a SQLite file on its own disk, keyed by the step's
index (``BaselineSpill``, pass 1); in the second run the same worker (a connection is dealt to
the same worker in both runs: the deal depends only on the range) reads each answer back as its
twin arrives and learns from the pair at once (pass 2), shipping only what it learned (counts and
the set of noisy paths per endpoint, at most ``MAX_NOISY_PATHS`` each) with its summaries. Disk
holds the first run's answer bodies; memory holds SQLite's page cache and the paths learned.

``learn_noise(run_a, run_b)`` does the learning from two lists of results (tests);
``learn_from_baseline`` runs the two baseline replays and returns the ``Noise`` they learned.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from replayer.judge.compare import body_diffs
from replayer.judge.result import Result

__all__ = ["MAX_NOISY_PATHS", "BaselineSpill", "Noise", "learn_from_baseline", "learn_noise"]

_INDEX = re.compile(r"\[\d+\]")
MAX_NOISY_PATHS = 200  # per endpoint; more are counted in Noise.paths_dropped


@dataclass(slots=True)
class Noise:
    paths: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> noisy paths
    compared: int = 0  # requests answered in both runs with the same status
    status_flaps: Counter = field(default_factory=Counter)  # endpoint -> status differed
    unanswered: int = 0  # a transport error in either run: nothing learned from it
    unpaired: int = 0  # second run's answers with no first-run twin (not sent then)
    paths_dropped: int = 0  # noisy paths past MAX_NOISY_PATHS of an endpoint (not kept)

    def pair(self, a: Result, b: Result) -> set[str]:
        """Learn from the answers ``a`` and ``b`` to one request; the paths it showed noisy."""
        if a.error is not None or b.error is not None:
            self.unanswered += 1
            return set()
        if a.status != b.status:
            self.status_flaps[b.endpoint] += 1
            return set()
        self.compared += 1
        return {_general(d) for d in body_diffs(a.body, b.body)}

    def to_wire(self) -> dict:
        return {"compared": self.compared, "unanswered": self.unanswered,
                "unpaired": self.unpaired, "status_flaps": dict(self.status_flaps),
                "paths": self.paths, "paths_dropped": self.paths_dropped}

    def merge_wire(self, d: dict) -> None:
        self.compared += d["compared"]
        self.unanswered += d["unanswered"]
        self.unpaired += d["unpaired"]
        self.paths_dropped += d["paths_dropped"]
        self.status_flaps.update(d["status_flaps"])
        for ep, paths in d["paths"].items():
            self.add_paths(ep, paths)

    def add_paths(self, endpoint: str, paths) -> None:
        mine = self.paths.setdefault(endpoint, [])
        for p in paths:
            if p in mine:
                continue
            if len(mine) >= MAX_NOISY_PATHS:
                self.paths_dropped += 1
                continue
            mine.append(p)
            mine.sort()

    def to_json(self, baseline: str) -> dict:
        return {"baseline": baseline, "runs": 2, "compared": self.compared,
                "unanswered": self.unanswered, "unpaired": self.unpaired,
                "status_flaps": dict(self.status_flaps),
                "paths": dict(sorted(self.paths.items())), "paths_dropped": self.paths_dropped}


def _general(path: str) -> str:
    if path.startswith("$ (not JSON"):
        return "$"
    return _INDEX.sub("[*]", path.removesuffix(" (length)"))


def learn_noise(run_a: list[Result], run_b: list[Result]) -> Noise:
    """Noisy paths per endpoint from two runs of the same plan (results with their bodies)."""
    first = {r.idx: r for r in run_a if r.iteration == 0}
    noise = Noise()
    paths: dict[str, set[str]] = defaultdict(set)
    for r in run_b:
        a = first.get(r.idx)
        if a is None or r.iteration != 0:
            continue
        paths[r.endpoint] |= noise.pair(a, r)
    noise.paths = {ep: sorted(p) for ep, p in sorted(paths.items()) if p}
    return noise


class BaselineSpill:
    """A worker's side of baseline learning (see the module docstring): ``add(result)`` in each
    of the two runs (``baseline_pass`` 1 then 2), ``take()`` what was learned since last time."""

    def __init__(self, folder: str, worker: int, baseline_pass: int) -> None:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"baseline-{worker}.sqlite")
        if baseline_pass == 1 and os.path.exists(path):
            os.remove(path)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS answer (idx INTEGER PRIMARY KEY, "
                        "status INTEGER, failed INTEGER, body BLOB)")
        self.baseline_pass = baseline_pass
        self.pending: list[tuple] = []
        self.noise = Noise()

    def add(self, r: Result) -> None:
        if r.iteration != 0:
            return
        if self.baseline_pass == 1:
            self.pending.append((r.idx, r.status, r.error is not None, r.body or b""))
            if len(self.pending) >= 500:
                self.flush()
            return
        row = self.db.execute("SELECT status, failed, body FROM answer WHERE idx = ?",
                              (r.idx,)).fetchone()
        if row is None:
            self.noise.unpaired += 1
            return
        a = r._replace(status=row[0], error="failed" if row[1] else None, body=row[2])
        paths = self.noise.pair(a, r)
        if paths:
            self.noise.add_paths(r.endpoint, sorted(paths))

    def flush(self) -> None:
        if self.pending:
            self.db.executemany("INSERT OR REPLACE INTO answer VALUES (?, ?, ?, ?)", self.pending)
            self.pending = []

    def take(self) -> dict | None:
        """What pass 2 learned since the last call (wire data), or None."""
        self.flush()
        if self.baseline_pass != 2:
            return None
        out, self.noise = self.noise.to_wire(), Noise()
        return out

    def close(self) -> None:
        self.flush()
        self.db.close()


def learn_from_baseline(baseline: str, run: Callable[[str, int], Noise | None],
                        log: Callable[..., None]) -> Noise:
    """Replay twice against ``baseline``: ``run(target, 1)`` keeps the answers on the workers,
    ``run(target, 2)`` compares with them and returns the Noise learned."""
    noise = None
    for i in (1, 2):
        log("replay.baseline_run", run=i, target=baseline)
        noise = run(baseline, i)
    log("replay.noise_learned", compared=noise.compared, unanswered=noise.unanswered,
        status_flaps=dict(noise.status_flaps) or None, paths=noise.paths)
    return noise
