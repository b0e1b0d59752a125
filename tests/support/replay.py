"""Helpers for replay tests: synthetic captured traffic, the logging target, running the CLI.

    records = traffic(conns=300, total=10_000, rate=1000)   # Record objects, capture order
    write_jsonl(path, records)
    with logging_server(log) as srv: ...                     # ci/testservers/logging_http_server.py
    rc, out, err = run_replay("--source", path, "--target", srv.url)
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from sidecar.contract.record import Record
from tests.support.servers import REPO, Server, start_server

__all__ = ["logging_server", "locust_unpatched", "read_log", "run_replay", "traffic",
           "write_jsonl"]

T0_NS = 1_700_000_000_000_000_000


def traffic(conns: int, total: int, rate: float, *, seed: int = 7, paths=None,
            resp_body=None, status=200) -> list[Record]:
    """``total`` requests spread over ``conns`` connections at ``rate`` requests a second overall.

    Request k goes to connection k % conns at T0 + k / rate; odd requests of a connection are
    POSTs with a binary body. Every request carries ``X-Rec: <conn>/<seq>`` to identify it,
    an ``Authorization`` and an ``X-Drop`` header for the rewrite tests.
    """
    rnd = random.Random(seed)
    seqs = [0] * conns
    out = []
    for k in range(total):
        c = k % conns
        seq = seqs[c]
        seqs[c] += 1
        post = seq % 2 == 1
        body = rnd.randbytes(rnd.randint(1, 300)) if post else b""
        path = paths(k) if paths else f"/items/{c}/{seq}?k={k}"
        headers = [("Host", "captured.example"), ("X-Rec", f"c{c}/{seq}"),
                   ("Authorization", "Bearer expired"), ("X-Drop", "1"),
                   ("Accept", "*/*")]
        if post:
            headers.append(("Content-Length", str(len(body))))
        rb = resp_body(k, "POST" if post else "GET", path) if resp_body else b""
        out.append(Record(ts_ns=T0_NS + int(k * 1e9 / rate), conn=f"c{c}", seq=seq,
                          client="10.0.0.1:1234", method="POST" if post else "GET",
                          target=path, version="1.1", headers=headers, body=body,
                          body_len=len(body), status=status, resp_body=rb,
                          resp_body_len=len(rb), latency_us=500))
    return out


def write_jsonl(path: Path, records: list[Record]) -> Path:
    with open(path, "wb") as f:
        for r in records:
            f.write(r.to_json() + b"\n")
    return path


def logging_server(log: Path, *extra: str) -> Server:
    script = REPO / "ci" / "testservers" / "logging_http_server.py"
    return start_server(
        "logging-http",
        lambda port, _: [sys.executable, str(script), "--port", str(port), "--log", str(log),
                         *extra])


def read_log(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["body"] = base64.b64decode(r.pop("body_b64"))
    return rows


def run_replay(*args: str, timeout: float = 180) -> tuple[int, str, str]:
    """Run ``rewind-replay`` as a real process; returns (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "replayer.replay.cli", "--log-format", "json", *args],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return p.returncode, p.stdout, p.stderr


@contextmanager
def locust_unpatched():
    """Import Locust inside this block: its ``__init__`` monkey-patches the whole process with
    gevent (threads, sockets, ssl) unless LOCUST_SKIP_MONKEY_PATCH is set, which would change
    every other test in the pytest process. The variable is gone again after the block, so
    processes the tests start later do not inherit it."""
    had = "LOCUST_SKIP_MONKEY_PATCH" in os.environ
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        yield
    finally:
        if not had:
            del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

