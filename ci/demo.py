"""`make demo`: rewind end to end on this machine, as far as the pipeline goes today.

Starts a private Redis, the sample API (Flask under gunicorn), and rewind-capture on the API's
port; sends a mix of real traffic; then prints what was captured, read back from the Redis
stream. Everything it started is stopped at the end, also on Ctrl-C.
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
import time
from contextlib import ExitStack
from pathlib import Path

import redis
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sidecar.record import Record
from sidecar.streams import stream_key

STREAM = "demo"


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
    out = open(log, "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()

    stack.callback(stop)
    return proc


def traffic(base: str, seconds: float) -> int:
    """A few users reacting to articles and reading summaries, with some bad input."""
    rng = random.Random(7)
    users = [requests.Session() for _ in range(4)]
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = rng.choice(users)
        roll = rng.random()
        if roll < 0.5:
            s.post(f"{base}/reactions", json={"user": f"user{rng.randint(1, 9)}",
                                              "article": f"article{rng.randint(1, 5)}",
                                              "reaction": rng.choice(["love", "like", "angry", "cry"])})
        elif roll < 0.75:
            s.get(f"{base}/articles/article{rng.randint(1, 5)}/reactions/summary")
        elif roll < 0.9:
            s.get(f"{base}/users/user{rng.randint(1, 9)}/reactions")
        else:
            s.post(f"{base}/reactions", json={"user": "", "reaction": "meh"})  # a 400
        sent += 1
    return sent


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: the capture probe loads into the kernel", file=sys.stderr)
        return 2
    out_dir = REPO / "out" / "demo"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    py = sys.executable
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

        step("starting Redis (private, on a free port)")
        rport = free_port()
        redis_proc = start(stack, ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", tmp],
                           out_dir / "redis.log")
        wait_port(rport, "redis-server", redis_proc)
        redis_url = f"redis://127.0.0.1:{rport}/0"
        print(f"    {redis_url}")

        step("starting the sample API (Flask under gunicorn, 2 workers x 4 threads)")
        aport = free_port()
        api = start(stack, [py, "-m", "gunicorn", "--bind", f"127.0.0.1:{aport}", "--chdir",
                            str(REPO), "--worker-class", "gthread", "--workers", "2", "--threads",
                            "4", "--no-control-socket", "ci.demo_api.app:app"], out_dir / "api.log",
                    env={**os.environ, "DEMO_API_DB": f"{tmp}/demo.sqlite3"})
        wait_port(aport, "the sample API", api)
        print(f"    http://127.0.0.1:{aport}")

        step(f"starting rewind-capture on port {aport} (compiling the eBPF probe takes a few s)")
        mport = free_port()
        cap_log = out_dir / "capture.log"
        cap = start(stack, [py, "-m", "sidecar.capture_cli", "--port", str(aport), "--redis",
                            redis_url, "--stream", STREAM, "--metrics-port", str(mport),
                            "--metrics-addr", "127.0.0.1", "--log-format", "json"], cap_log)
        deadline = time.monotonic() + 90
        while b"capture.ready" not in cap_log.read_bytes():
            if cap.poll() is not None or time.monotonic() > deadline:
                print(cap_log.read_text(), file=sys.stderr)
                raise SystemExit("rewind-capture did not start; its log is above")
            time.sleep(0.2)
        print(f"    capturing; metrics on http://127.0.0.1:{mport}/metrics")

        step("sending 10 s of mixed traffic (4 users: reactions, summaries, lists, bad input)")
        sent = traffic(f"http://127.0.0.1:{aport}", 10)
        print(f"    {sent} requests sent")

        step("reading the captured records back from Redis")
        client = redis.Redis.from_url(redis_url)
        key = stream_key(STREAM)
        deadline = time.monotonic() + 30
        while client.xlen(key) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
        entries = client.xrange(key)
        records = [Record.from_fields(f) for _, f in entries]
        print(f"    {len(records)} records in stream {key} (sent {sent})")
        print(f"\n    {'time':12} {'method':6} {'target':42} {'status':6} {'latency':>9}")
        for r in records[:12]:
            ms = r.ts_ns // 1_000_000 % 1000
            t = time.strftime("%H:%M:%S", time.localtime(r.ts_ns / 1e9)) + f".{ms:03d}"
            print(f"    {t:12} {r.method:6} {r.target[:42]:42} {r.status:<6} {r.latency_us:>7}us")
        if len(records) > 12:
            print(f"    ... and {len(records) - 12} more")
        dump = out_dir / "records.jsonl"
        with open(dump, "wb") as f:
            for r in records:
                f.write(r.to_json() + b"\n")
        if records:
            print("\n    one record in full (bodies are base64 in JSON):")
            for key, value in json.loads(records[0].to_json()).items():
                print(f"      {key:14} {json.dumps(value)[:150]}")
        metrics = requests.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
        print("\n    sidecar metrics:")
        for line in metrics.splitlines():
            if line.startswith(("rewind_capture_requests_total", "rewind_capture_published_records_total",
                                "rewind_capture_dropped", "rewind_capture_parse_errors_total")) \
                    and "_created" not in line:
                print(f"      {line}")
        step(f"done: records in {dump}, logs in {out_dir}/ (stopping everything)")
        return 0 if len(records) >= sent else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped")
        sys.exit(130)
