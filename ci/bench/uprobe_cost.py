"""`make bench-capture-tls`, part 2: what one uprobe hit costs the traced thread on this machine,
apart from any program's work. `--tls` capture hooks SSL_read/SSL_write with uprobes and
uretprobes; every hooked call traps into the kernel (a breakpoint at the entry, the return
trampoline), and `kernel.bpf_stats_enabled` counts only the programs' run time, not the trap.

A two-instruction C function is called in a loop (process CPU time per call) without a probe,
with an empty uprobe at its entry, and with an uprobe and an uretprobe; rounds alternate. The
difference is the kernel's price per hooked call, which `--tls` pays 3 times per request for
nginx (2 SSL_read, 1 SSL_write). Prints a Markdown table and writes JSON (--out)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ci.bench.lib import write_result  # noqa: E402

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
__attribute__((noinline)) int target_fn(int x) { __asm__ volatile(""); return x + 1; }
int main(int argc, char **argv) {
    long n = atol(argv[1]); int s = 0;
    struct timespec a, b;
    getchar();  /* the probe is attached before this returns */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (long i = 0; i < n; i++) s += target_fn((int)i);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    printf("%.1f %d\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, s);
    return 0;
}
"""
MODES = ("none", "entry", "entry+return")


def ns_per_call(binary: str, mode: str, calls: int) -> float:
    from bcc import BPF
    proc = subprocess.Popen([binary, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    bpf = None
    try:
        if mode != "none":
            bpf = BPF(text="int hit(void *ctx) { return 0; }")
            bpf.attach_uprobe(name=binary, sym="target_fn", fn_name="hit", pid=proc.pid)
            if mode == "entry+return":
                bpf.attach_uretprobe(name=binary, sym="target_fn", fn_name="hit", pid=proc.pid)
        out, _ = proc.communicate("\n", timeout=120)
    finally:
        if bpf is not None:
            bpf.cleanup()
    return float(out.split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000, help="calls per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each mode (alternating)")
    ap.add_argument("--out", default="bench-results/uprobe-cost.json", help="JSON output")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (uprobes)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        src, binary = Path(tmp) / "f.c", str(Path(tmp) / "f")
        src.write_text(SOURCE)
        subprocess.run(["gcc", "-O2", "-o", binary, str(src)], check=True)
        runs = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for m in MODES:
                runs[m].append(ns_per_call(binary, m, args.calls))
    med = {m: statistics.median(v) for m, v in runs.items()}
    print("\n| hooked call | ns per call (median) | runs | added by the hook |")
    print("|---|---:|---|---:|")
    for m in MODES:
        print(f"| {m} | {med[m]:,.1f} | {', '.join(f'{x:,.0f}' for x in runs[m])} | "
              f"{med[m] - med['none']:,.0f} |")
    print(f"load average: {os.getloadavg()}")
    write_result({"calls": args.calls, "runs": runs, "median_ns": med,
                  "added_ns": {m: med[m] - med["none"] for m in MODES},
                  "uptime": os.getloadavg()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
