"""`make bench-replay`: what rewind-replay can offer on this machine, next to plain Locust.

Against nginx answering 200 to everything (tests/support/servers.py ``nginx("return200")``):

1. ``max`` mode (every connection sends its next request when the last is answered, 100
   captured connections, looping the range for --seconds) with 1 and 2 worker processes:
   requests/s, and requests/s per worker process.
2. ``recorded`` mode at increasing rates (default 500, 1000, 2000 requests/s over 100
   connections, 2 workers): achieved rate and the schedule lag percentiles (sent - due), total
   and the scheduler's own part (lag minus the wait for a busy connection).
3. In the same run, a plain Locust ``FastHttpUser`` locustfile (ci/bench/plain_locustfile.py),
   one process, headless with ``--users 100 --spawn-rate 100``: no wait (as fast as answered),
   then ``constant_throughput`` paced to each rate; requests/s and latency come from its stats
   CSV. Plain Locust is closed loop (a user waits for its answer), so it has no schedule lag to
   report: its achieved rate is the comparable number.

4. ``--follow`` (shadow traffic): records XADDed to a real Redis at --follow-rate requests/s
   for --seconds (in batches every 20 ms, as a live capture would) while rewind-replay
   follows the stream with 2 workers: lag from arrival at the replayer to send, total and the
   scheduler's own part.

5. Correlation (issue 15, ``ci/bench/correlation.py``): ``max`` mode on 2 workers, one pass
   over a 20,000-request stateful range (a login's token carried into every later request of
   its user, on other connections), with and without ``--no-correlate``: requests/s and their
   ratio, the master's learning time per record, and the latency of values relayed between
   workers. ``--only correlation`` runs this part alone.

Prints a Markdown table and writes JSON (--out). Numbers from a shared 2-core VM where nginx
(2 worker processes), the replay master, its workers and this script share the cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ci.bench import correlation  # noqa: E402
from ci.bench.lib import write_result  # noqa: E402
from tests.support.replay import traffic, write_jsonl  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.servers import nginx  # noqa: E402
from tests.support.traffic import xadd_all  # noqa: E402

CONNS = 100


def replay(source: Path, url: str, report: Path, *args: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "replayer.replay.cli", "--log-format", "json",
                        "--source", str(source), "--target", url, "--report", str(report),
                        *args], capture_output=True, text=True, cwd=REPO, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"rewind-replay failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads((report / "summary.json").read_text())


def plain_locust(url: str, folder: Path, seconds: float, user_rps: float) -> dict:
    prefix = folder / f"plain-{user_rps:g}"
    env = {**os.environ, "BENCH_USER_RPS": str(user_rps)}
    p = subprocess.run([sys.executable, "-m", "locust", "-f",
                        str(REPO / "ci" / "bench" / "plain_locustfile.py"), "--headless",
                        "--users", str(CONNS), "--spawn-rate", str(CONNS), "--run-time",
                        f"{seconds:g}s", "--host", url, "--csv", str(prefix), "--only-summary",
                        "--loglevel", "WARNING"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    if p.returncode not in (0, 1):  # 1: some requests failed (reported in the CSV)
        raise SystemExit(f"locust failed ({p.returncode}):\n{p.stderr[-3000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "rps": round(float(row["Requests/s"]), 1), "p50_ms": float(row["50%"]),
            "p99_ms": float(row["99%"])}


def follow(url: str, folder: Path, rate: int, seconds: float) -> dict:
    """Lag of --follow while records are XADDed at ``rate``/s for ``seconds``."""
    import signal
    import time

    records = traffic(conns=CONNS, total=int(rate * seconds), rate=rate)
    batch = max(1, rate // 50)
    log = folder / "follow.log"
    with RedisServer() as redis_srv, open(log, "w") as out:
        client = redis_srv.client()
        p = subprocess.Popen([sys.executable, "-m", "replayer.replay.cli", "--log-format", "json",
                              "--source", redis_srv.url, "--stream", "bench", "--follow",
                              "--workers", "2", "--target", url, "--progress-every", "0.5s",
                              "--report", str(folder / "follow")],
                             cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "replay.progress" not in log.read_text():  # the workers have started
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"rewind-replay --follow did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        start = time.monotonic()
        for k in range(0, len(records), batch):
            time.sleep(max(0.0, start + k / rate - time.monotonic()))
            xadd_all(client, "bench", records[k:k + batch])
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        if p.wait(120) != 0:
            raise SystemExit(f"rewind-replay --follow failed:\n{log.read_text()[-3000:]}")
    s = json.loads((folder / "follow" / "summary.json").read_text())
    return {"rate": rate, "sent": s["totals"]["sent"], "errors": s["totals"]["errors"],
            "lag_ms": s["lag_ms"], "scheduler_lag_ms": s["scheduler_lag_ms"]}


def measure_correlation(args, result: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp, \
            nginx("static", access_log=False) as files:  # the stateful range's login answers
        correlation.serve_files(files.workdir / "www")
        print("correlation: max mode, 2 workers, stateful range (one pass)", flush=True)
        result["correlation"] = correlation.measure(replay, write_jsonl, files.url, Path(tmp),
                                                    requests=args.requests, users=args.users,
                                                    rounds=args.rounds)
        print("\n".join(correlation.rows(result["correlation"])), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="length of each measurement")
    ap.add_argument("--rates", default="500,1000,2000", help="recorded-mode rates, requests/s")
    ap.add_argument("--follow-rate", type=int, default=500,
                    help="--follow: records XADDed per second (0: skip)")
    ap.add_argument("--out", default="bench-results/replay.json", help="JSON output")
    ap.add_argument("--only", default=None, choices=["correlation", "max"],
                    help="run one part only: correlation, or max (max mode: 1 and 2 workers, "
                    "2 without correlation, plain Locust)")
    ap.add_argument("--requests", type=int, default=20_000,
                    help="correlation: requests in the stateful range")
    ap.add_argument("--users", type=int, default=correlation.USERS,
                    help="correlation: users in the stateful range")
    ap.add_argument("--rounds", type=int, default=2,
                    help="correlation: runs of each (with, without), best kept")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    result: dict = {"date": datetime.now().isoformat(timespec="seconds"),
                    "host": platform.node(), "cpus": os.cpu_count(), "seconds": args.seconds,
                    "connections": CONNS, "max": {}, "recorded": {}, "plain_locust": {}}
    if args.only in (None, "correlation"):
        measure_correlation(args, result)
    if args.only == "correlation":
        write_result(result, args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp, \
            nginx("return200", access_log=False) as srv:
        work = Path(tmp)
        rng = write_jsonl(work / "max.jsonl", traffic(conns=CONNS, total=5000, rate=1000))
        # the default (correlation on) and, on the same range, --no-correlate: what learning
        # costs on traffic with few carried values
        for label, workers, extra in ((1, 1, ()), (2, 2, ()),
                                      ("2, --no-correlate", 2, ("--no-correlate",))):
            print(f"max mode, {label} worker(s), {args.seconds:g} s", flush=True)
            s = replay(rng, srv.url, work / f"max-{workers}{'-'.join(extra)}", "--mode", "max",
                       "--loop", "--duration", f"{args.seconds:g}s", "--workers", str(workers),
                       *extra)
            t = s["totals"]
            result["max"][label] = {"rps": t["rps"], "rps_per_worker": round(t["rps"] / workers),
                                    "sent": t["sent"], "errors": t["errors"],
                                    "latency_ms": s["latency_ms"]}
            print(f"  {t['rps']:,.0f} requests/s", flush=True)
        print(f"plain Locust, no wait, {CONNS} users, 1 process", flush=True)
        result["plain_locust"]["max"] = plain_locust(srv.url, work, args.seconds, 0)
        print(f"  {result['plain_locust']['max']['rps']:,.0f} requests/s", flush=True)
        if args.only == "max":
            rates, args.follow_rate = [], 0
        for rate in rates:
            print(f"recorded mode at {rate}/s, 2 workers", flush=True)
            rec = write_jsonl(work / f"rec-{rate}.jsonl",
                              traffic(conns=CONNS, total=int(rate * args.seconds), rate=rate))
            s = replay(rec, srv.url, work / f"rec-{rate}", "--workers", "2")
            result["recorded"][rate] = {"rps": s["totals"]["rps"], "errors": s["totals"]["errors"],
                                        "lag_ms": s["lag_ms"],
                                        "scheduler_lag_ms": s["scheduler_lag_ms"],
                                        "waited_for_connection": s["waited_for_connection"],
                                        "latency_ms": s["latency_ms"]}
            print(f"  {s['totals']['rps']:,.0f}/s, lag p50 {s['lag_ms']['p50']} ms, "
                  f"p99 {s['lag_ms']['p99']} ms", flush=True)
            print(f"plain Locust paced to {rate}/s (constant_throughput)", flush=True)
            result["plain_locust"][rate] = plain_locust(srv.url, work, args.seconds, rate / CONNS)
            print(f"  {result['plain_locust'][rate]['rps']:,.0f}/s", flush=True)
        if args.follow_rate:
            print(f"--follow, {args.follow_rate}/s XADDed, 2 workers", flush=True)
            result["follow"] = follow(srv.url, work, args.follow_rate, args.seconds)
            print(f"  lag p50 {result['follow']['lag_ms']['p50']} ms, "
                  f"p99 {result['follow']['lag_ms']['p99']} ms", flush=True)
    print()
    print(table(result))
    print()
    write_result(result, args.out)
    return 0


def table(r: dict) -> str:
    pl = r["plain_locust"]
    lines = ["| measure | rewind-replay | plain Locust FastHttpUser (1 process) |",
             "|---|---:|---:|"]
    for w, m in r["max"].items():
        base = f"{pl['max']['rps']:,.0f}" if w == 1 else ""
        lines.append(f"| `max`, {w} worker(s): requests/s (per worker) | {m['rps']:,.0f} "
                     f"({m['rps_per_worker']:,}) | {base} |")
    for rate, m in r["recorded"].items():
        lag, sched = m["lag_ms"], m["scheduler_lag_ms"]
        p = pl[rate]
        lines.append(f"| `recorded` {int(rate):,}/s, 2 workers: achieved/s; lag ms p50 / p90 / "
                     f"p99 / max (scheduler p99) | {m['rps']:,.0f}; {lag['p50']} / {lag['p90']} / "
                     f"{lag['p99']} / {lag['max']} ({sched['p99']}) | {p['rps']:,.0f} "
                     f"(no schedule; latency p99 {p['p99_ms']:g} ms) |")
    f = r.get("follow")
    if f:
        lines.append(f"| `--follow`, {f['rate']:,}/s XADDed, 2 workers: sent; lag (send - arrival) "
                     f"ms p50 / p90 / p99 / max (scheduler p99) | {f['sent']:,}; "
                     f"{f['lag_ms']['p50']} / {f['lag_ms']['p90']} / {f['lag_ms']['p99']} / "
                     f"{f['lag_ms']['max']} ({f['scheduler_lag_ms']['p99']}) | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
