"""CPU accounting for the capture benchmark: a process's, a server's (all its processes) and the
whole machine's CPU time, so a throughput ratio can be explained by the CPU each request costs.

On a machine whose cores are all busy (wrk, the server, the sidecar and Redis share them),
throughput = cores / machine CPU per request, so the share of throughput kept with capture is
about machine-CPU-per-request without / with. The server's own CPU per request, without / with,
is what it keeps where it has cores to itself (a pod with its own CPU limit): the probe's cost
runs inside the server's syscalls and is counted there."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (every thread), in seconds; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def processes_cpu_seconds(pids) -> float:
    """CPU seconds of several processes (a server's master and workers)."""
    return sum(cpu_seconds(p) for p in pids)


def machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10])  # guest time is already inside user time
    return (sum(fields) - idle - guest) / CLK_TCK


class CpuWindow:
    """CPU used by the machine and by a server's processes between start() and stop()."""

    def __init__(self, server_pids) -> None:
        self._pids = list(server_pids)

    def start(self) -> CpuWindow:
        self._m0, self._s0 = machine_busy_seconds(), processes_cpu_seconds(self._pids)
        return self

    def stop(self, requests: int) -> dict:
        """µs of CPU per request over the window: the whole machine's and the server's."""
        machine = machine_busy_seconds() - self._m0
        server = processes_cpu_seconds(self._pids) - self._s0
        n = max(requests, 1)
        return {"machine_us_per_req": round(machine * 1e6 / n, 2),
                "server_us_per_req": round(server * 1e6 / n, 2)}


def pin(pids, cpus: set[int]) -> None:
    """Pin every thread of the processes ``pids`` to ``cpus`` (threads made later inherit it)."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass  # the thread ended meanwhile


class Pinning:
    """``--pin``: the server alone on its CPUs, wrk, the sidecar and Redis on the others, so the
    server's throughput shows only what capture costs inside it (the probe in its syscalls)."""

    def __init__(self, ncpu: int | None = None) -> None:
        ncpu = ncpu or os.cpu_count() or 1
        if ncpu < 2:
            raise SystemExit("--pin needs at least 2 CPUs")
        half = ncpu // 2
        self.server = set(range(half))
        self.others = set(range(half, ncpu))

    def wrk_prefix(self) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, sorted(self.others)))]

    def describe(self) -> str:
        return (f"server on CPU {sorted(self.server)}, wrk, sidecar and Redis on CPU "
                f"{sorted(self.others)}")
