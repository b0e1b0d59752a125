"""Noise learned from a baseline (Diffy's idea, without three live instances): ``--baseline URL``.

The plan is replayed twice against the baseline (a deployment known to be good, e.g. the
release in production) with the answers' bodies kept. A body field that differs between the two
baseline runs, for the same request, is noise: a timestamp, a generated id, a random order. Its
path, with list indices folded to ``[*]``, is ignored for that endpoint when the candidate's
answers are compared with the recording (in addition to ``--ignore``). A body that is not JSON
and differs between the runs makes the whole body of that endpoint noise (``$``: not compared).

``learn_noise(run_a, run_b)`` does the learning from two runs' results; ``learn_from_baseline``
runs the two baseline replays and returns a ``Noise``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from replayer.judge.compare import body_diffs
from replayer.judge.result import Result

__all__ = ["Noise", "learn_from_baseline", "learn_noise"]

_INDEX = re.compile(r"\[\d+\]")


@dataclass(slots=True)
class Noise:
    paths: dict[str, list[str]] = field(default_factory=dict)  # endpoint -> noisy paths
    compared: int = 0  # requests answered in both runs with the same status
    status_flaps: Counter = field(default_factory=Counter)  # endpoint -> status differed
    unanswered: int = 0  # a transport error in either run: nothing learned from it

    def to_json(self, baseline: str) -> dict:
        return {"baseline": baseline, "runs": 2, "compared": self.compared,
                "unanswered": self.unanswered, "status_flaps": dict(self.status_flaps),
                "paths": self.paths}


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
        if a.error is not None or r.error is not None:
            noise.unanswered += 1
            continue
        if a.status != r.status:
            noise.status_flaps[r.endpoint] += 1
            continue
        noise.compared += 1
        for d in body_diffs(a.body, r.body):
            paths[r.endpoint].add(_general(d))
    noise.paths = {ep: sorted(p) for ep, p in sorted(paths.items())}
    return noise


def learn_from_baseline(baseline: str, run: Callable[[str], list[Result]],
                        log: Callable[..., None]) -> Noise:
    """Replay twice against ``baseline`` (``run(target)`` returns a run's results with bodies)
    and learn the noise from the two runs."""
    runs = []
    for i in (1, 2):
        log("replay.baseline_run", run=i, target=baseline)
        runs.append(run(baseline))
    noise = learn_noise(runs[0], runs[1])
    log("replay.noise_learned", compared=noise.compared, unanswered=noise.unanswered,
        status_flaps=dict(noise.status_flaps) or None, paths=noise.paths)
    return noise
