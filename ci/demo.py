"""`make demo`: rewind end to end on this machine, in a few minutes.

1. starts a private Redis, the sample API (Flask under gunicorn), rewind-capture on the API's
   port and rewind-archive on the stream;
2. drives a minute of mixed traffic at the API (several users: reactions, summaries, lists,
   some bad input; keep-alive and new connections);
3. replays that window, from Redis and the archive joined, against a second instance of the API
   twice: once unchanged (the verdict passes) and once with a regression switched on (slower, one
   endpoint answering 500: the verdict fails);
4. prints where the two HTML reports are.

Everything it started is stopped at the end, also on Ctrl-C; re-running it starts afresh.
DEMO_SECONDS shortens the traffic (the test runs it with a few seconds); DEMO_OUT moves the output.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("DEMO_OUT") or REPO / "out" / "demo")
STREAM = "demo"
PY = sys.executable
NOISY = ["$..id", "$..created_at"]  # generated per instance: ignored in the body comparison
THRESHOLDS = {"max_p95_ms": 28, "max_error_rate": 0.01, "max_status_mismatch_rate": 0.01,
              "per_endpoint": True, "min_endpoint_requests": 10}


def step(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not open port {port} within {timeout}s")


def start(stack: ExitStack, argv: list[str], log: Path, **kw) -> subprocess.Popen:
    """A process in its own group, stopped (SIGTERM, then SIGKILL) when the stack unwinds."""
    out = open(log, "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
    stack.callback(stop, proc)
    stack.callback(out.close)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def wait_log(log: Path, needle: bytes, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while needle not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise SystemExit(f"{what} did not start; the end of its log is above")
        time.sleep(0.2)


def start_api(stack: ExitStack, name: str, tmp: str, regression: bool = False) -> str:
    port = free_port()
    env = {**os.environ, "DEMO_API_DB": f"{tmp}/{name}.sqlite3",
           "DEMO_API_REGRESSION": "1" if regression else "0"}
    proc = start(stack, [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--chdir", str(REPO),
                         "--worker-class", "gthread", "--workers", "2", "--threads", "4",
                         "--keep-alive", "75", "--no-control-socket", "ci.demo_api.app:app"],
                 OUT / f"{name}.log", env=env)
    wait_port(port, f"the sample API ({name})", proc)
    return f"http://127.0.0.1:{port}"


def user(base: str, seed: int, stop_at: float, counts: dict, lock: threading.Lock) -> None:
    """One user: mostly keep-alive, sometimes a new connection; reads, writes, some bad input."""
    rng = random.Random(seed)
    session = requests.Session()
    while time.monotonic() < stop_at:
        if rng.random() < 0.1:
            session.close()
            session = requests.Session()  # a new connection
        roll = rng.random()
        if roll < 0.45:
            r = session.post(f"{base}/reactions", json={
                "user": f"user{rng.randint(1, 20)}", "article": f"article{rng.randint(1, 8)}",
                "reaction": rng.choice(["love", "like", "angry", "cry"])}, timeout=10)
        elif roll < 0.70:
            r = session.get(f"{base}/articles/article{rng.randint(1, 8)}/reactions/summary", timeout=10)
        elif roll < 0.92:
            r = session.get(f"{base}/users/user{rng.randint(1, 20)}/reactions",
                            params={"limit": 5}, timeout=10)
        else:
            r = session.post(f"{base}/reactions", json={"user": "", "reaction": "meh"}, timeout=10)
        with lock:
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
        time.sleep(rng.uniform(0.02, 0.25))  # think time


def traffic(base: str, seconds: float, users: int = 8) -> dict:
    counts: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=user, args=(base, i, stop_at, counts, lock), daemon=True)
               for i in range(users)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(10, max(0.1, stop_at - time.monotonic())))
        left = max(0, stop_at - time.monotonic())
        print(f"    {sum(counts.values())} requests sent, {left:.0f}s to go", flush=True)
    return counts


def replay(source: str, target: str, name: str, speed: float) -> tuple[int, Path]:
    report = OUT / f"report-{name}"
    thresholds = OUT / "thresholds.json"
    argv = [PY, "-m", "replayer.replay.cli", "--source", source, "--stream", STREAM,
            "--target", target, "--mode", "recorded", "--speed", str(speed), "--workers", "2",
            "--report", str(report), "--thresholds", str(thresholds), "--log-format", "console",
            "--progress-every", "5s"]
    for path in NOISY:
        argv += ["--ignore", path]
    with open(OUT / f"replay-{name}.log", "wb") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
    return code, report


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: the capture probe loads into the kernel", file=sys.stderr)
        return 2
    seconds = float(os.environ.get("DEMO_SECONDS", "60"))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / "thresholds.json").write_text(json.dumps(THRESHOLDS, indent=2))
    archive = OUT / "archive"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

        step("1/6 starting Redis (private, on a free port) and the sample API")
        rport = free_port()
        redis_proc = start(stack, ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", tmp],
                           OUT / "redis.log")
        wait_port(rport, "redis-server", redis_proc)
        redis_url = f"redis://127.0.0.1:{rport}/0"
        api = start_api(stack, "api", tmp)
        print(f"    Redis {redis_url}, API {api} (Flask under gunicorn, 2 workers x 4 threads)")

        step("2/6 starting rewind-capture on the API's port and rewind-archive on the stream")
        cap_log = OUT / "capture.log"
        cap = start(stack, [PY, "-m", "sidecar.capture.cli", "--port", api.rsplit(":", 1)[1],
                            "--redis", redis_url, "--stream", STREAM, "--metrics-port", "0",
                            "--log-format", "json"], cap_log)
        arch_log = OUT / "archive.log"
        arch = start(stack, [PY, "-m", "sidecar.archive.cli", "--redis", redis_url, "--stream",
                             STREAM, "--out", str(archive), "--segment-seconds", "5",
                             "--metrics-port", "0", "--log-format", "json"], arch_log)
        print("    compiling the eBPF probe (a few seconds)...", flush=True)
        wait_log(cap_log, b"capture.ready", cap, "rewind-capture")
        print(f"    capturing into rewind:{{{STREAM}}}:http, archiving into {archive}")

        step(f"3/6 driving {seconds:.0f}s of mixed traffic at the API (8 users)")
        counts = traffic(api, seconds)
        sent = sum(counts.values())
        print(f"    sent {sent} requests; answers: "
              + ", ".join(f"{n} x {s}" for s, n in sorted(counts.items())))
        time.sleep(1.5)
        stop(cap)
        captured = sum(1 for line in cap_log.read_text().splitlines() if '"capture.stopped"' in line)
        stop(arch)
        import redis as redis_lib  # noqa: PLC0415
        in_redis = redis_lib.Redis.from_url(redis_url).xlen(f"rewind:{{{STREAM}}}:http")
        print(f"    captured {in_redis} requests (sent {sent}); capture stopped cleanly: "
              f"{'yes' if captured else 'no'}; archive segments: "
              f"{len(list(archive.rglob('*.jsonl.zst')))}")
        if in_redis < sent:
            print("    (fewer captured than sent: see rewind_capture_* counters in "
                  f"{cap_log}) ", flush=True)

        source = f"{redis_url},{archive}"
        speed = max(1.0, seconds / 15)
        step(f"4/6 replaying the window against an unchanged candidate (speed x{speed:g})")
        good = start_api(stack, "candidate", tmp)
        code_good, report_good = replay(source, good, "unchanged", speed)
        print(f"    verdict: {'PASS' if code_good == 0 else f'FAIL (exit {code_good})'}")

        step("5/6 replaying it against a candidate with a regression (+30 ms, summary -> 500)")
        bad = start_api(stack, "regressed", tmp, regression=True)
        code_bad, report_bad = replay(source, bad, "regression", speed)
        print(f"    verdict: {'PASS' if code_bad == 0 else f'FAIL (exit {code_bad})'}")
        for line in _failing_lines(report_bad)[:6]:
            print(f"      {line}")

        step("6/6 done (stopping everything)")
        print(f"    report, unchanged candidate:  {report_good / 'report.html'}")
        print(f"    report, regressed candidate:  {report_bad / 'report.html'}")
        print(f"    logs and archive:             {OUT}/")
        ok = code_good == 0 and code_bad == 1
        print(f"    as expected: {'yes' if ok else 'NO'} (unchanged passes, regression fails)")
        return 0 if ok else 1


def _failing_lines(report: Path) -> list[str]:
    try:
        summary = json.loads((report / "summary.json").read_text())
    except (OSError, ValueError):
        return []
    checks = (summary.get("verdict") or {}).get("checks", [])
    return [c["line"] for c in checks if not c["ok"]]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped")
        sys.exit(130)
