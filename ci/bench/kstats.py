"""Kernel-side cost of the probe, per BPF program, from the kernel's own run statistics.

With ``kernel.bpf_stats_enabled=1`` the kernel adds up, for every BPF program, how many times it
ran (``run_cnt``) and the nanoseconds it spent (``run_time_ns``, tail calls included in the
program that made them); both are in ``/proc/PID/fdinfo/FD`` of a process holding the program's
fd. The programs' names come from ``bpftool`` (the kernel keeps 15 characters; bpftool shows the
full name from the program's BTF).

    with KernelStats() as ks:           # turns the statistics on, restores the setting after
        before = ks.snapshot(pid)
        ...
        after = ks.snapshot(pid)
        cost = delta(before, after)      # {program: {"runs": n, "ns": t}}
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


class KernelStats:
    """Reads per-program run counts and times of the BPF programs a process holds."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._was: str | None = None

    def __enter__(self) -> KernelStats:
        self._was = SYSCTL.read_text().strip()
        SYSCTL.write_text("1")
        return self

    def __exit__(self, *exc) -> None:
        if self._was is not None:
            SYSCTL.write_text(self._was)

    def _name(self, prog_id: int) -> str:
        if prog_id not in self._names:
            out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)],
                                 capture_output=True, text=True)
            try:
                self._names[prog_id] = json.loads(out.stdout)["name"]
            except (ValueError, KeyError):
                self._names[prog_id] = f"id{prog_id}"
        return self._names[prog_id]

    def snapshot(self, pid: int) -> dict[str, dict[str, int]]:
        """{program name: {"runs", "ns"}} over the BPF programs whose fds ``pid`` holds (programs
        loaded twice under one name, as the TLS uprobes of several processes, are summed)."""
        out: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        base = f"/proc/{pid}/fdinfo"
        for fd in os.listdir(base):
            try:
                with open(f"{base}/{fd}") as f:
                    info = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if "prog_id" not in info or "run_cnt" not in info:
                continue
            pid_ = int(info["prog_id"])
            if pid_ in seen:
                continue
            seen.add(pid_)
            e = out.setdefault(self._name(pid_), {"runs": 0, "ns": 0})
            e["runs"] += int(info["run_cnt"])
            e["ns"] += int(info["run_time_ns"])
        return out


def delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    """after - before, per program; programs that did not run are left out."""
    out = {}
    for name, a in after.items():
        b = before.get(name, {"runs": 0, "ns": 0})
        runs, ns = a["runs"] - b["runs"], a["ns"] - b["ns"]
        if runs:
            out[name] = {"runs": runs, "ns": ns}
    return out


def per_request(cost: dict, requests: int) -> dict:
    """Runs and nanoseconds per request, per program and in total; plus ns per run."""
    n = max(requests, 1)
    progs = {name: {"runs_per_req": round(c["runs"] / n, 2), "ns_per_req": round(c["ns"] / n, 1),
                    "ns_per_run": round(c["ns"] / c["runs"], 1)}
             for name, c in sorted(cost.items(), key=lambda kv: -kv[1]["ns"])}
    return {"total_ns_per_req": round(sum(c["ns"] for c in cost.values()) / n, 1),
            "total_runs_per_req": round(sum(c["runs"] for c in cost.values()) / n, 2),
            "programs": progs}
