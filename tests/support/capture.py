"""Runs the real ``rewind-capture`` as a subprocess (as root) and reads back what it published.

Used by the BPF tests, the benchmark and the demo's test: no part of the sidecar is replaced.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from sidecar.contract.record import Record
from sidecar.contract.streams import stream_key
from tests.support.servers import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CaptureProcess:
    """``rewind-capture`` in a subprocess; its JSON log lines are kept in ``logs``."""

    def __init__(self, port: int, redis_url: str, stream: str, *extra: str,
                 metrics_port: int | None = None) -> None:
        self.port = port
        self.redis_url = redis_url
        self.stream = stream
        self.metrics_port = metrics_port or free_port()
        self.argv = [
            sys.executable, "-m", "sidecar.capture.cli",
            "--port", str(port), "--redis", redis_url, "--stream", stream,
            "--metrics-port", str(self.metrics_port), "--metrics-addr", "127.0.0.1",
            "--log-format", "json", *extra,
        ]
        self.logs: list[dict] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 90.0) -> CaptureProcess:
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()
        self.wait_log("capture.ready", timeout)
        return self

    def _read_logs(self) -> None:
        for line in self.proc.stdout:
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"event": "raw", "line": line.decode(errors="replace")})

    def wait_log(self, event: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in list(self.logs):
                if entry.get("event") == event:
                    return entry
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader take the last lines
                raise AssertionError(f"rewind-capture exited {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} log line within {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(json.dumps(e) for e in self.logs[-60:])

    def events(self, event: str) -> list[dict]:
        return [e for e in self.logs if e.get("event") == event]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics as {(name, sorted labels): value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def metric(self, name: str, **labels) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self._reader:
            self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> CaptureProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class StreamReader:
    """Reads a stream incrementally and keeps every record it has seen."""

    def __init__(self, client, stream: str) -> None:
        self.client = client
        self.key = stream_key(stream)
        self.last_id = b"0-0"
        self.records: list[Record] = []

    def poll(self) -> int:
        got = 0
        while True:
            resp = self.client.xread({self.key: self.last_id}, count=5000)
            if not resp:
                return got
            for entry_id, fields in resp[0][1]:
                self.records.append(Record.from_fields(fields))
                self.last_id = entry_id
                got += 1

    def wait(self, pred: Callable[[Record], bool], n: int, timeout: float = 30.0) -> list[Record]:
        """Records matching ``pred``, once there are at least ``n`` (fails after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            found = [r for r in self.records if pred(r)]
            if len(found) >= n or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def settle(self, pred: Callable[[Record], bool], quiet: float = 1.0,
               timeout: float = 30.0) -> list[Record]:
        """Matching records once no new one has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.poll()
            count = sum(1 for r in self.records if pred(r))
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.05)
        return [r for r in self.records if pred(r)]


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
