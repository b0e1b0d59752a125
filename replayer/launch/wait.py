"""Waiting for a launched replay: polls the run's Pods and the master Job, shows progress (Pod
state changes, the master's log lines as they come), and says how it ended.

The master Pod's container exit code is the verdict. The run has no verdict when the master
Job fails without one (deadline, Pod deleted), when a Pod cannot start (bad image, a missing
ConfigMap or Secret, an image that stays unpullable for ``pull_grace_s``), or at the timeout.
The master's log is read with ``timestamps=true`` and ``sinceSeconds``, so each poll fetches
only the recent lines; lines already shown are skipped by their timestamp.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from replayer.launch.bundle import _BEGIN, _END
from replayer.launch.kube import Cluster, ClusterError
from replayer.launch.manifests import ROLE_LABEL, names

__all__ = ["Outcome", "Waiter", "pod_state"]

FATAL = {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
PULL = {"ErrImagePull", "ImagePullBackOff"}
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(?:Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int | None  # the master container's, when it ended
    reason: str
    master_pod: str | None = None


def _container(pod: dict) -> dict:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def pod_state(pod: dict) -> str:
    """``Pending (ImagePullBackOff)``, ``Running``, ``Failed (exit 1)``..."""
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    state = _container(pod).get("state") or {}
    if "terminated" in state:
        t = state["terminated"]
        return f"{phase} (exit {t.get('exitCode')}" + (f", {t['reason']})" if t.get("reason") else ")")
    if "waiting" in state and state["waiting"].get("reason"):
        return f"{phase} ({state['waiting']['reason']})"
    return phase


def _ts_key(ts: str) -> tuple[str, str] | None:
    m = _TS.match(ts)
    return (m.group(1), (m.group(2) or "").ljust(9, "0")) if m else None


class Waiter:
    def __init__(self, cluster: Cluster, run_id: str, *, timeout_s: float, poll_s: float = 2.0,
                 pull_grace_s: float = 120.0, retry_s: float = 60.0, log, echo: Callable[[str], None],
                 clock=time.monotonic, wall=time.time, sleep=time.sleep) -> None:
        self.cluster, self.run_id, self.log, self.echo = cluster, run_id, log, echo
        self.timeout_s, self.poll_s, self.pull_grace_s = timeout_s, poll_s, pull_grace_s
        self.retry_s = retry_s
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.master_job = names(run_id)["master"]
        self._states: dict[str, str] = {}
        self._pull_since: dict[str, float] = {}
        self._last_ts: tuple[str, str] | None = None
        self._last_read = 0.0
        self._in_bundle = False
        self._warned_workers = False

    def wait(self) -> Outcome:
        """Poll until the run ends; an API error is retried for ``retry_s`` before it counts."""
        deadline = self.clock() + self.timeout_s
        failing_since = None
        while True:
            try:
                outcome = self._poll(deadline)
                failing_since = None
            except ClusterError as exc:
                if failing_since is None:  # logged once per streak of failures
                    failing_since = self.clock()
                    self.log.warning("launch.api_error", error=str(exc), retrying_for_s=self.retry_s)
                if self.clock() - failing_since >= self.retry_s or self.clock() >= deadline:
                    raise
                outcome = None
            if outcome is not None:
                return outcome
            self.sleep(self.poll_s)

    def _poll(self, deadline: float) -> Outcome | None:
        """One look at the run: its Outcome when it ended, else None."""
        pods = self.cluster.pods(self.run_id)
        self._show(pods)
        masters = sorted((p for p in pods if _role(p) == "master"),
                         key=lambda p: p["metadata"].get("creationTimestamp") or "")
        master = masters[-1] if masters else None
        state = (_container(master).get("state") or {}) if master else {}
        if master and ("running" in state or "terminated" in state):
            self._stream(master["metadata"]["name"])
        if "terminated" in state:
            code = state["terminated"].get("exitCode")
            return Outcome(code, f"master {pod_state(master)}", master["metadata"]["name"])
        stuck = self._stuck(pods)
        if stuck:
            return Outcome(None, stuck, master and master["metadata"]["name"])
        ended = self._jobs_ended()
        if ended:
            return Outcome(None, ended, master and master["metadata"]["name"])
        if self.clock() >= deadline:
            return Outcome(None, f"timed out after {self.timeout_s:g} s",
                           master and master["metadata"]["name"])
        return None

    def full_log(self, pod: str) -> str:
        return self.cluster.log(pod, "replay")

    # -- progress --------------------------------------------------------------------------
    def _show(self, pods: list[dict]) -> None:
        for p in pods:
            name, state = p["metadata"]["name"], pod_state(p)
            if self._states.get(name) != state:
                self._states[name] = state
                self.log.info("launch.pod", pod=name, role=_role(p), state=state)

    def _stream(self, pod: str) -> None:
        asked = self.wall()
        since = None if self._last_ts is None else max(1, int(asked - self._last_read) + 5)
        text = self.cluster.log(pod, "replay", since_s=since, timestamps=True)
        self._last_read = asked  # only once read: a failed read leaves the window wider
        for line in text.splitlines():
            ts, _, body = line.partition(" ")
            key = _ts_key(ts)
            if key is None:
                key, body = self._last_ts, line
            elif self._last_ts is not None and key <= self._last_ts:
                continue
            self._last_ts = key
            if _BEGIN.match(body.strip()):
                self._in_bundle = True
                self.echo("[master] (the report bundle follows in the log)")
            elif _END.match(body.strip()):
                self._in_bundle = False
            elif not self._in_bundle:
                self.echo(f"[master] {body}")

    # -- endings without a verdict ---------------------------------------------------------
    def _stuck(self, pods: list[dict]) -> str | None:
        now = self.clock()
        for p in pods:
            name = p["metadata"]["name"]
            reason = ((_container(p).get("state") or {}).get("waiting") or {}).get("reason")
            if reason in FATAL:
                return f"Pod {name} cannot start: {reason}"
            if reason in PULL:
                since = self._pull_since.setdefault(name, now)
                if now - since >= self.pull_grace_s:
                    image = _container(p).get("image", "?")
                    return f"Pod {name} cannot pull its image {image} ({reason})"
            else:
                self._pull_since.pop(name, None)
        return None

    def _jobs_ended(self) -> str | None:
        job = self.cluster.job(self.master_job)
        if job is None:
            return f"the master Job {self.master_job} is gone"
        for c in (job.get("status") or {}).get("conditions") or []:
            if c.get("type") in ("Failed", "Complete") and c.get("status") == "True":
                return (f"the master Job ended ({c['type']}: {c.get('reason', '')} "
                        f"{c.get('message', '')}".rstrip() + ") without a replay exit code")
        if not self._warned_workers:
            workers = self.cluster.job(names(self.run_id)["workers"]) or {}
            if (workers.get("status") or {}).get("failed"):
                self._warned_workers = True
                self.log.warning("launch.worker_failed", job=names(self.run_id)["workers"],
                                 note="the master ends the run (exit 5) when a worker is gone")
        return None


def _role(pod: dict) -> str:
    return (pod["metadata"].get("labels") or {}).get(ROLE_LABEL, "?")
