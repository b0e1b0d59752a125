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

4. The sidecar's CPU when its target is idle (nginx listening, no requests), in ms per second.

5. The probe's own cost in the kernel, per BPF program and per request (run count and
   nanoseconds from ``kernel.bpf_stats_enabled``, ci/bench/kstats.py), over each captured run.

Beside each throughput pair: the server's CPU per request (all its processes; the probe runs
inside their syscalls) and the whole machine's (/proc/stat), ci/bench/cpuacct.py. With every
core busy, machine CPU per request without / with predicts the throughput kept; the server's
without / with is what it keeps on cores of its own, and ``--pin`` measures that directly.

With ``--baseline REF`` every pair becomes a triple: without capture, with the probe of git
``REF`` (bpf/ as it was there, through REWIND_BPF_DIR; the userspace is this tree's), and with
this tree's probe, so the before/after of a probe change comes out of one run as ratios.

With --tls only one thing is measured: nginx over HTTPS (keep-alive, so few handshakes) without
and with `rewind-capture --tls` (plaintext from libssl uprobes), as in 1, with the uprobes'
cost per request as in 5.

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

from ci.bench import kstats
from ci.bench.cpuacct import CpuWindow, Pinning, cpu_seconds, pin
from ci.bench.lib import write_result  # noqa: E402
from sidecar.contract.streams import stream_key
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.redis_server import RedisServer
from tests.support.servers import gunicorn_flask, nginx

def wrk(url: str, seconds: float, conns: int, threads: int = 2, script: str | None = None,
        prefix: tuple[str, ...] = ()) -> dict:
    argv = [*prefix, "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": done, "rps": rps, "non2xx": int(errors.group(1)) if errors else 0}


def plain_run(server, url: str, seconds: float, conns: int, prefix: tuple[str, ...] = ()) -> dict:
    """One wrk run without capture, with the machine's and the server's CPU per request."""
    window = CpuWindow(server.pids()).start()
    res = wrk(url, seconds, conns, prefix=prefix)
    return {**res, **window.stop(res["requests"])}


def captured_run(cap, redis_pid: int, client, stream: str, url: str, seconds: float, conns: int,
                 script: str | None = None, drain_timeout: float = 120.0,
                 ks: kstats.KernelStats | None = None, server=None,
                 prefix: tuple[str, ...] = ()) -> dict:
    """One wrk run with capture attached, then wait until its records are all in Redis.

    The sidecar's CPU is counted from just before wrk starts until the stream holds a record per
    request wrk completed (what the sidecar still had queued when wrk stopped included)."""
    key = stream_key(stream)
    n0 = client.xlen(key)
    k0 = ks.snapshot(cap.proc.pid) if ks else {}
    window = CpuWindow(server.pids() if server is not None else []).start()
    c0, r0 = cpu_seconds(cap.proc.pid), cpu_seconds(redis_pid)
    res = wrk(url, seconds, conns, script=script, prefix=prefix)
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
    used = window.stop(res["requests"])
    kernel = kstats.per_request(kstats.delta(k0, ks.snapshot(cap.proc.pid)), res["requests"]) \
        if ks else None
    waited = time.monotonic() - t_end
    captured = client.xlen(key) - n0
    per_k = 1000.0 / max(captured, 1)
    return {**res, "captured": captured,
            "drain_s": None if drain is None else round(drain, 2),
            "sidecar_cpu_s_per_1k": round((c1 - c0) * per_k, 4),
            "redis_cpu_s_per_1k": round((r1 - r0) * per_k, 4),
            "sidecar_cpu_cores": round((c1 - c0) / (seconds + waited), 3),
            "lost_pct": round(100.0 * max(0, res["requests"] - captured) / max(res["requests"], 1), 2),
            "kernel": kernel, **used}


def idle_cpu(server, redis_srv, seconds: float) -> dict:
    """The sidecar's CPU while its target serves nothing: what it costs a pod that is idle
    (the once-a-second scan of /proc and sockets, looks at the ring, housekeeping)."""
    cap = CaptureProcess(server.port, redis_srv.url, "bench-idle", "--metrics-port", "0").start()
    try:
        time.sleep(2)  # past start-up
        c0 = cpu_seconds(cap.proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(cap.proc.pid) - c0
    finally:
        cap.stop()
    return {"seconds": seconds, "cpu_ms_per_s": round(used * 1000 / seconds, 1)}


def kept_up(run: dict, keep_up_s: float) -> bool:
    return run["drain_s"] is not None and run["drain_s"] <= keep_up_s


def throughput_pairs(server, redis_srv, path: str, seconds: float, rounds: int, conns: int,
                     keep_up_s: float, extra: tuple[str, ...] = (),
                     variants: dict[str, str | None] | None = None,
                     ks: kstats.KernelStats | None = None,
                     pinning: Pinning | None = None) -> dict:
    """Alternate runs without and with capture (with each probe of ``variants``: label -> bpf/
    folder, None for this tree's); ratio per pair. One result per variant."""
    variants = variants or {"with": None}
    base, plain = [], []
    per = {v: {"rps": [], "ratios": [], "runs": [], "server": [], "machine": []} for v in variants}
    client = redis_srv.client()
    prefix = tuple(pinning.wrk_prefix()) if pinning else ()
    if pinning:
        pin(server.pids(), pinning.server)
        pin([redis_srv._proc.pid], pinning.others)
    warm = wrk(f"{server.url}{path}", max(seconds // 2, 1), conns, prefix=prefix)  # first runs start cold
    print(f"  warm-up: {warm['rps']:,.0f} req/s (not counted)", flush=True)
    for i in range(rounds):
        a = plain_run(server, f"{server.url}{path}", seconds, conns, prefix)
        base.append(a["rps"])
        plain.append(a)
        line = (f"  round {i}: without {a['rps']:,.0f} req/s (server {a['server_us_per_req']} us/req, "
                f"machine {a['machine_us_per_req']} us/req)")
        for label, bpf in variants.items():
            stream = f"bench-{server.name}-{label}-{i}"
            saved = os.environ.get("REWIND_BPF_DIR")
            if bpf:
                os.environ["REWIND_BPF_DIR"] = bpf
            try:
                cap = CaptureProcess(server.port, redis_srv.url, stream, "--metrics-port", "0",
                                     *extra).start()
                if pinning:
                    pin([cap.proc.pid], pinning.others)
            finally:
                if saved is None:
                    os.environ.pop("REWIND_BPF_DIR", None)
                else:
                    os.environ["REWIND_BPF_DIR"] = saved
            try:
                b = captured_run(cap, redis_srv._proc.pid, client, stream, f"{server.url}{path}",
                                 seconds, conns, ks=ks, server=server, prefix=prefix)
            finally:
                cap.stop()
            client.delete(stream_key(stream))
            per[label]["rps"].append(b["rps"])
            per[label]["ratios"].append(b["rps"] / a["rps"])
            per[label]["runs"].append(b)
            per[label]["server"].append(b["server_us_per_req"] / max(a["server_us_per_req"], 1e-9))
            per[label]["machine"].append(a["machine_us_per_req"] / max(b["machine_us_per_req"], 1e-9))
            kns = b["kernel"]["total_ns_per_req"] if b["kernel"] else None
            line += (f"; {label} {b['rps']:,.0f} req/s, sidecar {b['sidecar_cpu_s_per_1k']} "
                     f"CPU-s/1k, kernel {kns} ns/req, server {b['server_us_per_req']} us/req, machine "
                     f"{b['machine_us_per_req']} us/req, lost {b['lost_pct']}%, drain {b['drain_s']} s")
        print(line, flush=True)
    med = statistics.median
    out = {"rps_without": med(base), "rounds": rounds, "warm_up_rps": warm["rps"],
           "server_us_per_req_without": round(med(a["server_us_per_req"] for a in plain), 2),
           "machine_us_per_req_without": round(med(a["machine_us_per_req"] for a in plain), 2),
           "runs_without": plain}
    for label, p in per.items():
        runs = p["runs"]
        drains = [r["drain_s"] for r in runs]
        out[label] = {
            "rps_with": med(p["rps"]),
            "throughput_ratio": round(med(p["ratios"]), 3),
            "throughput_ratios": [round(x, 3) for x in p["ratios"]],
            "throughput_loss_pct": round((1 - med(p["ratios"])) * 100, 1),
            "sidecar_cpu_s_per_1k": round(med(r["sidecar_cpu_s_per_1k"] for r in runs), 4),
            "redis_cpu_s_per_1k": round(med(r["redis_cpu_s_per_1k"] for r in runs), 4),
            "sidecar_cpu_cores": round(med(r["sidecar_cpu_cores"] for r in runs), 3),
            "max_drain_s": None if None in drains else max(drains),
            "kept_up": all(kept_up(r, keep_up_s) for r in runs),
            "max_lost_pct": max(r["lost_pct"] for r in runs),
            "kernel": median_kernel([r["kernel"] for r in runs]),
            "server_us_per_req": round(med(r["server_us_per_req"] for r in runs), 2),
            "machine_us_per_req": round(med(r["machine_us_per_req"] for r in runs), 2),
            # what the server keeps on cores of its own: its CPU per request without / with
            "server_kept": round(1 / med(p["server"]), 3),
            "server_kept_pairs": [round(1 / x, 3) for x in p["server"]],
            # what the shared machine's CPU per request predicts for the throughput kept
            "machine_kept": round(med(p["machine"]), 3),
            "runs": runs,
        }
    return out


def median_kernel(ks: list[dict | None]) -> dict | None:
    """Per program, the median over runs of ns and runs per request."""
    ks = [k for k in ks if k]
    if not ks:
        return None
    med = statistics.median
    names = {n for k in ks for n in k["programs"]}
    progs = {}
    for n in names:
        got = [k["programs"][n] for k in ks if n in k["programs"]]
        progs[n] = {f: round(med(g[f] for g in got), 2)
                    for f in ("runs_per_req", "ns_per_req", "ns_per_run")}
    return {"total_ns_per_req": round(med(k["total_ns_per_req"] for k in ks), 1),
            "total_runs_per_req": round(med(k["total_runs_per_req"] for k in ks), 2),
            "programs": dict(sorted(progs.items(), key=lambda kv: -kv[1]["ns_per_req"]))}


def baseline_bpf(ref: str, into: str) -> str:
    """bpf/ as it is in git ``ref``, extracted into ``into``; returns the folder."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", ref, "bpf"], capture_output=True,
                         check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=tar, check=True)
    return os.path.join(into, "bpf")


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
                    help="paced rates to try, requests/s ('' skips the paced runs)")
    ap.add_argument("--keep-up", type=float, default=2.0,
                    help="seconds after wrk stops within which every record must be in Redis")
    ap.add_argument("--baseline", default=None, metavar="REF",
                    help="also run the probe (bpf/) of git REF in every round, for before/after")
    ap.add_argument("--only", choices=("nginx", "flask"), default=None,
                    help="measure one server only")
    ap.add_argument("--idle-seconds", type=float, default=20,
                    help="how long the idle sidecar's CPU is measured")
    ap.add_argument("--pin", action="store_true",
                    help="the server alone on half the CPUs, wrk, the sidecar and Redis on the "
                    "others: what the server keeps when it has cores of its own (a pod's CPU "
                    "limit), i.e. the probe's cost inside it; default: everything shares every CPU")
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
              "uptime": os.getloadavg(),
              "command": " ".join(["ci/bench/capture.py", *sys.argv[1:]]),
              "seconds": args.seconds, "keep_up_s": args.keep_up, "baseline": args.baseline}
    pinning = Pinning() if args.pin else None
    result["pinning"] = pinning.describe() if pinning else None
    if pinning:
        print(f"pinned: {pinning.describe()}", flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, kstats.KernelStats() as ks:
        variants = {"with": None}
        if args.baseline:
            variants = {"before": baseline_bpf(args.baseline, tmp), "with": None}
        if args.tls:
            return tls_only(args, result, variants, ks)
        with RedisServer() as redis_srv:
            if args.only in (None, "nginx"):
                print("nginx return 200: without vs with capture", flush=True)
                with nginx("return200", access_log=False) as srv:
                    result["idle"] = idle_cpu(srv, redis_srv, args.idle_seconds)
                    print(f"  idle sidecar (nginx listening, no traffic): "
                          f"{result['idle']['cpu_ms_per_s']} ms of CPU per second", flush=True)
                    result["nginx"] = throughput_pairs(srv, redis_srv, "/", args.seconds,
                                                       args.rounds, args.conns, args.keep_up,
                                                       variants=variants, ks=ks, pinning=pinning)
                    if args.rates and not pinning:
                        print("highest rate captured with zero loss (nginx)", flush=True)
                        result["zero_loss"] = zero_loss_rate(
                            srv, redis_srv, [int(r) for r in args.rates.split(",")],
                            args.seconds, args.conns, args.keep_up)
            if args.only in (None, "flask"):
                print("Flask under gunicorn (gthread, 2 workers x 4 threads): without vs with "
                      "capture", flush=True)
                with gunicorn_flask("gthread", workers=2, threads=4) as api:
                    result["flask"] = throughput_pairs(api, redis_srv, "/healthz", args.seconds,
                                                       args.rounds, 20, args.keep_up,
                                                       variants=variants, ks=ks, pinning=pinning)
    result["uptime_end"] = os.getloadavg()
    rows = [(name, result[key]) for name, key in (("nginx return 200", "nginx"),
                                                  ("Flask/gunicorn /healthz", "flask"))
            if key in result]
    print_tables(rows, list(variants))
    if "zero_loss" in result:
        z = result["zero_loss"]
        print(f"\nhighest paced rate captured with zero loss (nginx): {z['max_zero_loss_rps']:,.0f} "
              f"req/s; also kept up (all records in Redis within {args.keep_up:g} s of wrk's end): "
              f"{z['max_kept_up_rps']:,.0f} req/s")
    if "idle" in result:
        print(f"idle sidecar: {result['idle']['cpu_ms_per_s']} ms of CPU per second")
    print(f"load average at end: {os.getloadavg()}")
    write_result(result, args.out)
    return 0


def print_tables(rows: list[tuple[str, dict]], labels: list[str]) -> None:
    """The Markdown tables: throughput and CPU per probe variant, then kernel ns per program."""
    print("\n| target | probe | req/s without | req/s with capture | kept (median, pairs) | "
          "sidecar CPU-s per 1k req | Redis CPU-s per 1k req | sidecar CPU (cores) | "
          "kernel ns per req | drain after wrk (max) | requests not captured (max) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        for label in labels:
            v = r[label]
            drain = "never" if v["max_drain_s"] is None else f"{v['max_drain_s']} s"
            kns = v["kernel"]["total_ns_per_req"] if v["kernel"] else "-"
            print(f"| {name} | {label} | {r['rps_without']:,.0f} | {v['rps_with']:,.0f} | "
                  f"{v['throughput_ratio']:.1%} ({', '.join(f'{x:.0%}' for x in v['throughput_ratios'])}) | "
                  f"{v['sidecar_cpu_s_per_1k']} | {v['redis_cpu_s_per_1k']} | "
                  f"{v['sidecar_cpu_cores']} | {kns} | {drain} | {v['max_lost_pct']}% |")
    print("\nwhere the CPU goes, µs per request (medians): the server's own processes (the probe runs "
          "inside their syscalls), and the whole machine; 'predicted' = machine without / with, "
          "what a machine whose cores are all busy keeps")
    print("| target | probe | server without | server with | server keeps on its own cores (pairs) | "
          "machine without | machine with | predicted kept | measured kept |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        for label in labels:
            v = r[label]
            print(f"| {name} | {label} | {r['server_us_per_req_without']} | {v['server_us_per_req']} | "
                  f"{v['server_kept']:.1%} ({', '.join(f'{x:.0%}' for x in v['server_kept_pairs'])}) | "
                  f"{r['machine_us_per_req_without']} | {v['machine_us_per_req']} | "
                  f"{v['machine_kept']:.1%} | {v['throughput_ratio']:.1%} |")
    print("\nkernel, per BPF program (median over rounds): runs per request, ns per request, ns per run")
    print("| target | probe | program | runs/req | ns/req | ns/run |")
    print("|---|---|---|---:|---:|---:|")
    for name, r in rows:
        for label in labels:
            k = r[label]["kernel"]
            if not k:
                continue
            for prog, c in k["programs"].items():
                print(f"| {name} | {label} | {prog} | {c['runs_per_req']} | {c['ns_per_req']} | "
                      f"{c['ns_per_run']} |")
            print(f"| {name} | {label} | **all** | {k['total_runs_per_req']} | "
                  f"{k['total_ns_per_req']} | |")
    if "before" in labels and "with" in labels:
        print("\nafter / before (same run):")
        for name, r in rows:
            b, a = r["before"], r["with"]
            kb = b["kernel"]["total_ns_per_req"] if b["kernel"] else None
            ka = a["kernel"]["total_ns_per_req"] if a["kernel"] else None
            print(f"  {name}: throughput kept {b['throughput_ratio']:.1%} -> "
                  f"{a['throughput_ratio']:.1%}; sidecar CPU per req x"
                  f"{a['sidecar_cpu_s_per_1k'] / max(b['sidecar_cpu_s_per_1k'], 1e-9):.2f}; "
                  f"kernel ns per req {kb} -> {ka}"
                  + (f" (x{ka / kb:.2f})" if ka and kb else ""))


def tls_only(args, result: dict, variants: dict, ks) -> int:
    result["command"] = "python ci/bench/capture.py --tls"
    with RedisServer() as redis_srv, nginx("return200", access_log=False, tls=True) as srv:
        print("nginx HTTPS return 200: without vs with capture --tls", flush=True)
        result["nginx_tls"] = throughput_pairs(srv, redis_srv, "/", args.seconds, args.rounds,
                                               args.conns, args.keep_up, extra=("--tls",),
                                               variants=variants, ks=ks)
    result["uptime_end"] = os.getloadavg()
    print_tables([("nginx HTTPS return 200", result["nginx_tls"])], list(variants))
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
