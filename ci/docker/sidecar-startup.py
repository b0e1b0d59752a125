"""What the sidecar image costs to start: seconds from `run` to `capture.ready` (most of it bcc compiling
the probe), CPU-seconds and peak RSS of rewind-capture by then, as the chart runs it
(capabilities, seccomp Unconfined, host tracefs, the image's kernel headers).

    CONTAINERS_CONF=ci/podman/containers.conf python3 ci/docker/sidecar-startup.py IMAGE [RUNS]

Needs root and podman (or DOCKER=docker). Prints one JSON line per run and the medians; the
figures in docs/chart.md come from here."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime

DOCKER = os.environ.get("DOCKER", "podman")


def sh(*args: str) -> str:
    return subprocess.run([DOCKER, *args], check=True, capture_output=True, text=True).stdout


def one(image: str) -> dict:
    name = f"rewind-startup-{os.getpid()}"
    t0 = time.time()
    sh("run", "-d", "--name", name, "--cap-add", "BPF", "--cap-add", "PERFMON", "--cap-add",
       "SYS_PTRACE", "--security-opt", "seccomp=unconfined", "-v",
       "/sys/kernel/tracing:/sys/kernel/tracing", image, "--port", "8080", "--stream", "startup",
       "--redis", "redis://127.0.0.1:1/0", "--metrics-port", "0", "--log-format", "json")
    try:
        deadline = time.monotonic() + 300
        while True:
            out = subprocess.run([DOCKER, "logs", name], capture_output=True, text=True)
            logs = out.stdout + out.stderr
            ready = [json.loads(x) for x in logs.splitlines() if '"capture.ready"' in x]
            if ready:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no capture.ready:\n{logs[-3000:]}")
            time.sleep(0.1)
        pid = int(sh("inspect", name, "--format", "{{.State.Pid}}"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        t1 = datetime.fromisoformat(ready[0]["timestamp"].replace("Z", "+00:00")).timestamp()
        return {"ready_s": round(t1 - t0, 2), "probe_load_s": ready[0].get("probe_load_s"),
                "cpu_s": round(cpu, 2), "peak_rss_mib": int(status["VmHWM"].split()[0]) // 1024,
                "rss_mib": int(status["VmRSS"].split()[0]) // 1024}
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)


def main() -> None:
    image, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results = []
    for _ in range(runs):
        results.append(one(image))
        print(json.dumps(results[-1]))
    print(json.dumps({"median": {k: statistics.median(r[k] for r in results) for k in results[0]}}))


if __name__ == "__main__":
    main()
