"""`make bench-capture`: what capture costs and how much it can take, measured in one run.

1. Throughput of nginx (`return 200`) and of the demo API (Flask under gunicorn), driven by wrk on
   loopback, without and with rewind-capture attached; runs alternate (A B A B) and each ratio is
   taken within one pair, so the machine's drift cancels out.
2. The sidecar's CPU per 1,000 captured requests: utime + stime of the whole process (all its
   threads) from just before wrk starts until every record of the run is in Redis, so work the
   sidecar deferred (a ring buffer or queue it drains after wrk stopped) is counted too.
   Redis's own CPU for the same records is reported beside it. "drain" is how long after wrk
   stopped the last record reached Redis; the sidecar "kept up" when that is within --keep-up
   seconds.
3. The highest offered rate captured with zero loss, and the highest one the sidecar also kept up
   with: wrk paced by a Lua `delay()` at rising rates against nginx; loss = requests wrk
   completed that have no record in Redis, plus kernel drops.

With --tls only one thing is measured: nginx over HTTPS (keep-alive, so few handshakes) without
and with `rewind-capture --tls` (plaintext from libssl uprobes), as in 1.

Prints a Markdown table and writes JSON (--out). Numbers from a shared 2-core VM: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sidecar.contract.streams import stream_key
from ci.bench.lib import write_result  # noqa: E402
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.redis_server import RedisServer
from tests.support.servers import gunicorn_flask, nginx

CLK_TCK = os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: float, conns: int, threads: int = 2, script: str | None = None) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": done, "rps": rps, "non2xx": int(errors.group(1)) if errors else 0}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def captured_run(cap, redis_pid: int, client, stream: str, url: str, seconds: float, conns: int,
                 script: str | None = None, drain_timeout: float = 120.0) -> dict:
    """One wrk run with capture attached, then wait until its records are all in Redis.

    The sidecar's CPU is counted from just before wrk starts until the stream holds a record per
    request wrk completed (what the sidecar still had queued when wrk stopped included)."""
    key = stream_key(stream)
    n0 = client.xlen(key)
    c0, r0 = cpu_seconds(cap.proc.pid), cpu_seconds(redis_pid)
    res = wrk(url, seconds, conns, script=script)
    t_end = time.monotonic()
    want = n0 + res["requests"]
    drain = None
    last, still_since = -1, time.monotonic()
    while time.monotonic() - t_end < drain_timeout:
        n = client.xlen(key)
        if n >= want:
            drain = time.monotonic() - t_end
            break
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since > 3:  # stopped growing: the rest was dropped
            break
        time.sleep(0.02)
    c1, r1 = cpu_seconds(cap.proc.pid), cpu_seconds(redis_pid)
    waited = time.monotonic() - t_end
    captured = client.xlen(key) - n0
    per_k = 1000.0 / max(captured, 1)
    return {**res, "captured": captured,
            "drain_s": None if drain is None else round(drain, 2),
            "sidecar_cpu_s_per_1k": round((c1 - c0) * per_k, 4),
            "redis_cpu_s_per_1k": round((r1 - r0) * per_k, 4),
            "sidecar_cpu_cores": round((c1 - c0) / (seconds + waited), 3),
            "lost_pct": round(100.0 * max(0, res["requests"] - captured) / max(res["requests"], 1), 2)}


def kept_up(run: dict, keep_up_s: float) -> bool:
    return run["drain_s"] is not None and run["drain_s"] <= keep_up_s


def throughput_pairs(server, redis_srv, path: str, seconds: float, rounds: int, conns: int,
                     keep_up_s: float, extra: tuple[str, ...] = ()) -> dict:
    """Alternate runs without and with capture; ratio per pair."""
    base, withcap, ratios, runs = [], [], [], []
    client = redis_srv.client()
    for i in range(rounds):
        a = wrk(f"{server.url}{path}", seconds, conns)
        stream = f"bench-{server.name}-{i}"
        cap = CaptureProcess(server.port, redis_srv.url, stream, "--metrics-port", "0",
                             *extra).start()
        try:
            b = captured_run(cap, redis_srv._proc.pid, client, stream, f"{server.url}{path}",
                             seconds, conns)
        finally:
            cap.stop()
        client.delete(stream_key(stream))
        base.append(a["rps"])
        withcap.append(b["rps"])
        ratios.append(b["rps"] / a["rps"])
        runs.append(b)
        print(f"  pair {i}: {a['rps']:,.0f} vs {b['rps']:,.0f} req/s, sidecar "
              f"{b['sidecar_cpu_s_per_1k']} CPU-s per 1k, drain {b['drain_s']} s", flush=True)
    med = statistics.median
    drains = [r["drain_s"] for r in runs]
    return {
        "rps_without": med(base),
        "rps_with": med(withcap),
        "throughput_ratio": med(ratios),
        "throughput_loss_pct": round((1 - med(ratios)) * 100, 1),
        "sidecar_cpu_s_per_1k": round(med(r["sidecar_cpu_s_per_1k"] for r in runs), 4),
        "redis_cpu_s_per_1k": round(med(r["redis_cpu_s_per_1k"] for r in runs), 4),
        "sidecar_cpu_cores": round(med(r["sidecar_cpu_cores"] for r in runs), 3),
        "max_drain_s": None if None in drains else max(drains),
        "kept_up": all(kept_up(r, keep_up_s) for r in runs),
        "rounds": rounds,
        "runs": runs,
    }


def zero_loss_rate(server, redis_srv, rates: list[int], seconds: float, conns: int,
                   keep_up_s: float) -> dict:
    """Paced load at rising rates; the highest rate whose every completed request was captured,
    and the highest one whose records were also all in Redis within keep_up_s of wrk's end."""
    steps = []
    stream = "bench-paced"
    cap = CaptureProcess(server.port, redis_srv.url, stream, "--maxlen", "10000000").start()
    client = redis_srv.client()
    reader = StreamReader(client, stream)
    try:
        for rate in rates:
            delay_ms = conns * 1000.0 / rate
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(f"function delay() return {delay_ms:.3f} end\n")
                script = f.name
            path = f"/paced/{rate}"
            run = captured_run(cap, redis_srv._proc.pid, client, stream, f"{server.url}{path}",
                               seconds, conns, script=script)
            os.unlink(script)
            recs = reader.settle(lambda r, p=path: r.target == p, quiet=1.0, timeout=30)
            answered = sum(1 for r in recs if r.status == 200)
            drops = sum(v for (n, _), v in cap.metrics().items()
                        if n in ("rewind_capture_dropped_events_total",
                                 "rewind_capture_dropped_records_total"))
            lost = max(0, run["requests"] - answered)
            up = kept_up(run, keep_up_s)
            steps.append({"offered_rps": rate, "achieved_rps": run["rps"],
                          "completed": run["requests"], "captured": answered, "lost": lost,
                          "drops_so_far": drops, "drain_s": run["drain_s"], "kept_up": up,
                          "sidecar_cpu_s_per_1k": run["sidecar_cpu_s_per_1k"],
                          "redis_cpu_s_per_1k": run["redis_cpu_s_per_1k"],
                          "sidecar_cpu_cores": run["sidecar_cpu_cores"]})
            print(f"  paced {rate:>6}/s: achieved {run['rps']:>8.0f}/s, completed "
                  f"{run['requests']}, captured {answered}, lost {lost}, drain {run['drain_s']} s, "
                  f"sidecar {run['sidecar_cpu_s_per_1k']} CPU-s per 1k", flush=True)
            if lost or drops or not up:
                break
    finally:
        cap.stop()
    ok = [s for s in steps if s["lost"] == 0 and s["drops_so_far"] == 0]
    return {"steps": steps, "keep_up_s": keep_up_s,
            "max_zero_loss_rps": max((s["achieved_rps"] for s in ok), default=0),
            "max_kept_up_rps": max((s["achieved_rps"] for s in ok if s["kept_up"]), default=0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8, help="length of each wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="A/B pairs per server")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections")
    ap.add_argument("--rates", default="2000,5000,10000,15000,20000,25000,30000",
                    help="paced rates to try, requests/s")
    ap.add_argument("--keep-up", type=float, default=2.0,
                    help="seconds after wrk stops within which every record must be in Redis")
    ap.add_argument("--tls", action="store_true",
                    help="only nginx over HTTPS without vs with `rewind-capture --tls`")
    ap.add_argument("--out", default=None,
                    help="JSON output (default bench-results/capture.json, capture-tls.json with --tls)")
    args = ap.parse_args()
    args.out = args.out or ("bench-results/capture-tls.json" if args.tls else "bench-results/capture.json")
    if os.geteuid() != 0:
        print("bench-capture needs root (the probe loads into the kernel)", file=sys.stderr)
        return 2

    result = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "python": platform.python_version()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "make bench-capture", "seconds": args.seconds, "keep_up_s": args.keep_up}
    if args.tls:
        return tls_only(args, result)
    with RedisServer() as redis_srv:
        print("nginx return 200: without vs with capture", flush=True)
        with nginx("return200", access_log=False) as srv:
            result["nginx"] = throughput_pairs(srv, redis_srv, "/", args.seconds, args.rounds,
                                               args.conns, args.keep_up)
            print("highest rate captured with zero loss (nginx)", flush=True)
            result["zero_loss"] = zero_loss_rate(srv, redis_srv, [int(r) for r in args.rates.split(",")],
                                                 args.seconds, args.conns, args.keep_up)
        print("Flask under gunicorn (gthread, 2 workers x 4 threads): without vs with capture", flush=True)
        with gunicorn_flask("gthread", workers=2, threads=4) as api:
            result["flask"] = throughput_pairs(api, redis_srv, "/healthz", args.seconds,
                                               args.rounds, 20, args.keep_up)

    n, f, z = result["nginx"], result["flask"], result["zero_loss"]
    rows = [
        ("nginx return 200", n),
        ("Flask/gunicorn /healthz", f),
    ]
    print("\n| target | req/s without | req/s with capture | throughput lost | sidecar CPU-s "
          "per 1k req | Redis CPU-s per 1k req | sidecar CPU (cores) | drain after wrk (max) | "
          "requests not captured (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        drain = "never" if r["max_drain_s"] is None else f"{r['max_drain_s']} s"
        print(f"| {name} | {r['rps_without']:,.0f} | {r['rps_with']:,.0f} | "
              f"{r['throughput_loss_pct']}% | {r['sidecar_cpu_s_per_1k']} | "
              f"{r['redis_cpu_s_per_1k']} | {r['sidecar_cpu_cores']} | {drain} | "
              f"{max(x['lost_pct'] for x in r['runs'])}% |")
    print(f"\nhighest paced rate captured with zero loss (nginx): {z['max_zero_loss_rps']:,.0f} req/s; "
          f"also kept up (all records in Redis within {args.keep_up:g} s of wrk's end): "
          f"{z['max_kept_up_rps']:,.0f} req/s")
    write_result(result, args.out)
    return 0


def tls_only(args, result: dict) -> int:
    result["command"] = "python ci/bench/capture.py --tls"
    with RedisServer() as redis_srv, nginx("return200", access_log=False, tls=True) as srv:
        print("nginx HTTPS return 200: without vs with capture --tls", flush=True)
        r = result["nginx_tls"] = throughput_pairs(srv, redis_srv, "/", args.seconds, args.rounds,
                                                   args.conns, args.keep_up, extra=("--tls",))
    print("\n| target | req/s without | req/s with capture --tls | throughput lost | sidecar "
          "CPU-s per 1k req | requests not captured (max) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| nginx HTTPS return 200 | {r['rps_without']:,.0f} | {r['rps_with']:,.0f} | "
          f"{r['throughput_loss_pct']}% | {r['sidecar_cpu_s_per_1k']} | "
          f"{max(x['lost_pct'] for x in r['runs'])}% |")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
