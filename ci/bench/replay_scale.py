"""`make bench-replay-scale`: memory, throughput and time to first request of rewind-replay as the
range grows, and memory over a compressed soak. A benchmark, not a test.

1. Ranges of --sizes requests (default 100k, 1M, 5M) of realistic JSON API traffic over 300
   captured connections (ci/bench/replay_data.py), stored as exported files (.jsonl.zst, kept in
   --data between runs), each replayed in ``max`` mode with 2 workers against nginx answering 200
   to everything: peak RSS of the master and of each worker (sampled from /proc every 0.2 s),
   requests/s over the send window, time from the command's start to the first request (the
   first ``replay.progress`` line with sent > 0, progress every 0.2 s), wall time and exit code.
2. A compressed soak: a 20k-request range with ``--loop --mode rps --rps R --duration S`` (default
   4000/s for 10 minutes), RSS of the master and the workers every 10 s, and the slope of each
   (least squares, MB per hour) over the second half of the run.

``--repo`` runs another checkout's code (its .venv): the same harness before and after a change.
Prints a Markdown table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ci.bench.lib import write_result  # noqa: E402
from ci.bench.replay_data import write_range  # noqa: E402
from tests.support.servers import nginx  # noqa: E402

MB = 1 << 20


def _size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * mult)


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


class Sampler:
    """RSS of a process and its children (the workers), every ``every`` s, in a thread."""

    def __init__(self, pid: int, every: float) -> None:
        self.proc = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, int, list[int]]] = []  # (t, master, [worker...])
        self.cpu: tuple[float, list[float]] = (0.0, [])  # CPU seconds: master, each worker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                master = self.proc.memory_info().rss
                mt = self.proc.cpu_times()
                kids, kid_cpu = [], []
                for c in self.proc.children():
                    try:
                        kids.append(c.memory_info().rss)
                        ct = c.cpu_times()
                        kid_cpu.append(ct.user + ct.system)
                    except psutil.Error:
                        pass
                if kid_cpu:
                    self.cpu = (mt.user + mt.system, kid_cpu)
                self.samples.append((time.monotonic() - self.t0, master, kids))
            except psutil.Error:
                return
            self.stop.wait(self.every)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def peaks(self) -> dict:
        master = max((m for _, m, _ in self.samples), default=0)
        n = max((len(k) for _, _, k in self.samples), default=0)
        workers = [max((k[i] for _, _, k in self.samples if len(k) > i), default=0)
                   for i in range(n)]
        return {"master_mb": round(master / MB, 1), "workers_mb": [round(w / MB, 1) for w in workers],
                "cpu_s": {"master": round(self.cpu[0], 1),
                          "workers": [round(c, 1) for c in self.cpu[1]]}}


def run_replay(python: str, repo: Path, args: list[str], every: float, timeout: float,
               log: Path) -> dict:
    start = time.monotonic()
    with open(log, "w") as out:
        p = subprocess.Popen([python, "-m", "replayer.replay.cli", "--log-format", "json",
                              "--progress-every", "0.2s", *args], cwd=repo, stdout=out,
                             stderr=subprocess.STDOUT)
        sampler = Sampler(p.pid, every)
        first = None
        seen = 0
        while p.poll() is None and time.monotonic() - start < timeout:
            time.sleep(0.05)
            if first is None:
                text = log.read_text(errors="replace")
                for line in text.splitlines()[seen:]:
                    if '"replay.progress"' in line:
                        try:
                            if json.loads(line).get("sent", 0) > 0:
                                first = time.monotonic() - start
                                break
                        except ValueError:
                            pass
                seen = max(0, len(text.splitlines()) - 1)
        if p.poll() is None:
            p.kill()
        rc = p.wait()
        sampler.finish()
    return {"rc": rc, "wall_s": round(time.monotonic() - start, 1),
            "first_request_s": None if first is None else round(first, 2), **sampler.peaks(),
            "samples": sampler.samples}


def slope_mb_per_h(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t s, MB) over the second half of the samples, MB per hour."""
    pts = samples[len(samples) // 2:]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    return round(sum((t - mt) * (v - mv) for t, v in pts) / den * 3600, 1) if den else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M,5M", help="range sizes, requests")
    ap.add_argument("--data", default="bench-results/replay-scale-data",
                    help="where the generated ranges are kept between runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--soak-rate", type=float, default=4000, help="soak: requests/s (0: skip)")
    ap.add_argument("--soak-seconds", type=float, default=600)
    ap.add_argument("--soak-every", type=float, default=10, help="soak: RSS sample interval")
    ap.add_argument("--repo", default=str(REPO), help="checkout whose rewind-replay is run")
    ap.add_argument("--timeout", type=float, default=3600, help="per run, seconds")
    ap.add_argument("--out", default="bench-results/replay-scale.json", help="JSON output")
    args = ap.parse_args()
    repo = Path(args.repo).resolve()
    python = str(repo / ".venv" / "bin" / "python")
    data = Path(args.data)
    sizes = [_size(s) for s in args.sizes.split(",") if s]
    result: dict = {"date": datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                    "cpus": os.cpu_count(), "repo": str(repo), "workers": args.workers,
                    "load_before": os.getloadavg(), "sizes": {}, "soak": None}
    with tempfile.TemporaryDirectory(prefix="bench-replay-scale-") as tmp, \
            nginx("return200", access_log=False) as srv:
        work = Path(tmp)
        for n in sizes:
            path = data / f"range-{_label(n)}.jsonl.zst"
            if not path.exists():
                print(f"generating {path}", flush=True)
                write_range(path, n)
            print(f"max mode, {_label(n)} requests, {args.workers} workers "
                  f"(uptime: {os.getloadavg()})", flush=True)
            report = work / f"max-{n}"
            m = run_replay(python, repo, ["--source", str(path.resolve()), "--target", srv.url,
                                          "--mode", "max", "--workers", str(args.workers),
                                          "--report", str(report)],
                           0.2, args.timeout, work / f"max-{n}.log")
            del m["samples"]
            if (report / "summary.json").exists():
                s = json.loads((report / "summary.json").read_text())
                m.update(sent=s["totals"]["sent"], errors=s["totals"]["errors"],
                         rps=s["totals"]["rps"])
            else:
                m["log_tail"] = (work / f"max-{n}.log").read_text(errors="replace")[-1500:]
            m["file_mb"] = round(path.stat().st_size / MB, 1)
            result["sizes"][_label(n)] = m
            print(f"  {m}", flush=True)
        if args.soak_rate:
            path = data / "range-soak-20k.jsonl.zst"
            if not path.exists():
                write_range(path, 20_000)
            print(f"soak: --loop --mode rps --rps {args.soak_rate:g} for {args.soak_seconds:g} s "
                  f"(uptime: {os.getloadavg()})", flush=True)
            m = run_replay(python, repo, ["--source", str(path.resolve()), "--target", srv.url,
                                          "--mode", "rps", "--rps", f"{args.soak_rate:g}",
                                          "--loop", "--duration", f"{args.soak_seconds:g}s",
                                          "--workers", str(args.workers),
                                          "--report", str(work / "soak")],
                           args.soak_every, args.soak_seconds + 600, work / "soak.log")
            samples = m.pop("samples")
            series = [(t, mm / MB, [k / MB for k in kids]) for t, mm, kids in samples]
            m["rss_mb"] = [[round(t), round(mm, 1), [round(k, 1) for k in kids]]
                           for t, mm, kids in series]
            m["master_slope_mb_per_h"] = slope_mb_per_h([(t, mm) for t, mm, _ in series])
            m["worker_slopes_mb_per_h"] = [
                slope_mb_per_h([(t, kids[i]) for t, _, kids in series if len(kids) > i])
                for i in range(args.workers)]
            if (work / "soak" / "summary.json").exists():
                s = json.loads((work / "soak" / "summary.json").read_text())
                m.update(sent=s["totals"]["sent"], errors=s["totals"]["errors"],
                         rps=s["totals"]["rps"])
            result["soak"] = m
            print(f"  master slope {m['master_slope_mb_per_h']} MB/h, workers "
                  f"{m['worker_slopes_mb_per_h']} MB/h", flush=True)
    result["load_after"] = os.getloadavg()
    print()
    print(table(result))
    print()
    write_result(result, args.out)
    return 0


def table(r: dict) -> str:
    lines = ["| range | master peak RSS | worker peak RSS | requests/s | first request | exit |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, m in r["sizes"].items():
        lines.append(f"| {label} (`max`, {r['workers']} workers) | {m['master_mb']:,.0f} MB | "
                     f"{' / '.join(f'{w:,.0f}' for w in m['workers_mb']) or '-'} MB | "
                     f"{m.get('rps') or 0:,.0f} | {m['first_request_s']} s | {m['rc']} |")
    s = r.get("soak")
    if s:
        last = s["rss_mb"][-1] if s["rss_mb"] else [0, 0, []]
        lines.append(f"| soak {s.get('sent', 0):,} sent, {s['wall_s']:.0f} s: RSS at end, slope "
                     f"MB/h | {last[1]:,.0f} MB ({s['master_slope_mb_per_h']}) | "
                     f"{' / '.join(f'{w:,.0f}' for w in last[2])} MB "
                     f"({' / '.join(str(x) for x in s['worker_slopes_mb_per_h'])}) | "
                     f"{s.get('rps') or 0:,.0f} | | {s['rc']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
