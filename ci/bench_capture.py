"""`make bench-capture`: what capture costs and how much it can take, measured in one run.

1. Throughput of nginx (`return 200`) and of the demo API (Flask under gunicorn), driven by wrk on
   loopback, without and with rewind-capture attached; runs alternate (A B A B) and each ratio is
   taken within one pair, so the machine's drift cancels out.
2. The highest offered rate captured with zero loss: wrk paced by a Lua `delay()` at rising rates
   against nginx; loss = requests wrk completed that have no record in Redis, plus kernel drops.
3. CPU used by the sidecar (utime + stime from /proc) per second of capture.

Prints a table and writes JSON (--out). Numbers from a shared 2-core VM: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.capture import CaptureProcess, StreamReader
from tests.support.redis_server import RedisServer
from tests.support.servers import gunicorn_flask, nginx

CLK_TCK = os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: float, conns: int, threads: int = 2, script: str | None = None) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": done, "rps": rps, "non2xx": int(errors.group(1)) if errors else 0}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def throughput_pairs(server, redis_srv, path: str, seconds: float, rounds: int, conns: int) -> dict:
    """Alternate runs without and with capture; ratio per pair."""
    base, withcap, ratios, cpu = [], [], [], []
    for i in range(rounds):
        a = wrk(f"{server.url}{path}", seconds, conns)
        cap = CaptureProcess(server.port, redis_srv.url, f"bench-{server.name}-{i}",
                             "--metrics-port", "0").start()
        c0, t0 = cpu_seconds(cap.proc.pid), time.monotonic()
        b = wrk(f"{server.url}{path}", seconds, conns)
        cpu.append((cpu_seconds(cap.proc.pid) - c0) / (time.monotonic() - t0))
        cap.stop()
        base.append(a["rps"])
        withcap.append(b["rps"])
        ratios.append(b["rps"] / a["rps"])
    return {
        "rps_without": statistics.median(base),
        "rps_with": statistics.median(withcap),
        "throughput_ratio": statistics.median(ratios),
        "throughput_loss_pct": round((1 - statistics.median(ratios)) * 100, 1),
        "sidecar_cpu_cores": round(statistics.median(cpu), 3),
        "rounds": rounds,
    }


def zero_loss_rate(server, redis_srv, rates: list[int], seconds: float, conns: int) -> dict:
    """Paced load at each rate; the highest rate whose every completed request was captured."""
    steps = []
    stream = "bench-paced"
    cap = CaptureProcess(server.port, redis_srv.url, stream, "--maxlen", "10000000").start()
    reader = StreamReader(redis_srv.client(), stream)
    try:
        for rate in rates:
            delay_ms = conns * 1000.0 / rate
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(f"function delay() return {delay_ms:.3f} end\n")
                script = f.name
            path = f"/paced/{rate}"
            c0, t0 = cpu_seconds(cap.proc.pid), time.monotonic()
            res = wrk(f"{server.url}{path}", seconds, conns, script=script)
            os.unlink(script)
            recs = reader.settle(lambda r, p=path: r.target == p, quiet=1.0, timeout=120)
            cpu = (cpu_seconds(cap.proc.pid) - c0) / (time.monotonic() - t0)
            answered = sum(1 for r in recs if r.status == 200)
            drops = sum(v for (n, _), v in cap.metrics().items()
                        if n in ("rewind_capture_dropped_events_total",
                                 "rewind_capture_dropped_records_total"))
            lost = max(0, res["requests"] - answered)
            steps.append({"offered_rps": rate, "achieved_rps": res["rps"],
                          "completed": res["requests"], "captured": answered, "lost": lost,
                          "drops_so_far": drops, "sidecar_cpu_cores": round(cpu, 3)})
            print(f"  paced {rate:>6}/s: achieved {res['rps']:>8.0f}/s, completed "
                  f"{res['requests']}, captured {answered}, lost {lost}", flush=True)
            if lost or drops:
                break
    finally:
        cap.stop()
    ok = [s for s in steps if s["lost"] == 0 and s["drops_so_far"] == 0]
    return {"steps": steps, "max_zero_loss_rps": max((s["achieved_rps"] for s in ok), default=0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8, help="length of each wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="A/B pairs per server")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections")
    ap.add_argument("--rates", default="2000,5000,10000,15000,20000,30000",
                    help="paced rates to try, requests/s")
    ap.add_argument("--out", default="bench-results/capture.json", help="JSON output")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench-capture needs root (the probe loads into the kernel)", file=sys.stderr)
        return 2

    result = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "python": platform.python_version()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "make bench-capture", "seconds": args.seconds}
    with RedisServer() as redis_srv:
        print("nginx return 200: without vs with capture", flush=True)
        with nginx("return200", access_log=False) as srv:
            result["nginx"] = throughput_pairs(srv, redis_srv, "/", args.seconds, args.rounds, args.conns)
            print("highest rate captured with zero loss (nginx)", flush=True)
            result["zero_loss"] = zero_loss_rate(srv, redis_srv, [int(r) for r in args.rates.split(",")],
                                                 args.seconds, args.conns)
        print("Flask under gunicorn (gthread, 2 workers x 4 threads): without vs with capture", flush=True)
        with gunicorn_flask("gthread", workers=2, threads=4) as api:
            result["flask"] = throughput_pairs(api, redis_srv, "/healthz", args.seconds,
                                               args.rounds, 20)

    n, f, z = result["nginx"], result["flask"], result["zero_loss"]
    rows = [
        ("nginx return 200", n),
        ("Flask/gunicorn /healthz", f),
    ]
    print("\n| target | req/s without | req/s with capture | throughput lost | sidecar CPU (cores) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['rps_without']:,.0f} | {r['rps_with']:,.0f} | "
              f"{r['throughput_loss_pct']}% | {r['sidecar_cpu_cores']} |")
    print(f"\nhighest paced rate captured with zero loss (nginx): {z['max_zero_loss_rps']:,.0f} req/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
