"""Runs the real ``rewind-archive`` as a subprocess, and reads back what an archive holds.

``ArchiveProcess`` keeps the archiver's JSON log lines; ``archive_contents`` reads every segment
file of an archive folder (listed or not), so a test can check "each entry exactly once".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from pathlib import Path

from sidecar.contract.manifest import Manifest
from sidecar.contract.archive_lines import line_id
from sidecar.contract.segments import SUFFIX, iter_lines, verify
from sidecar.contract.stream_ids import parse_id
from sidecar.contract.streams import stream_key

REPO = Path(__file__).resolve().parents[2]

__all__ = ["ArchiveProcess", "archive_contents", "stream_entry_ids", "wait_for"]


class ArchiveProcess:
    """``rewind-archive`` in a subprocess (``python -m sidecar.archive.cli``)."""

    def __init__(self, redis_url: str, stream: str, out: Path, *extra: str,
                 consumer: str = "arch-0") -> None:
        self.argv = [sys.executable, "-m", "sidecar.archive.cli", "--redis", redis_url,
                     "--stream", stream, "--out", str(out), "--consumer", consumer,
                     "--metrics-port", "0", "--log-format", "json", *extra]
        self.logs: list[dict] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> ArchiveProcess:
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        weakref.finalize(self, _kill, self.proc)  # a failing test leaves no archiver behind
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"event": "raw", "line": line.decode(errors="replace")})

    def events(self, name: str) -> list[dict]:
        return [e for e in list(self.logs) if e.get("event") == name]

    def wait_log(self, name: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} log line within {timeout}s; logs: {self.logs[-10:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self._reader:
            self._reader.join(5)
        return code

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        if self._reader:
            self._reader.join(5)
        return code


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def archive_contents(root: Path) -> Counter:
    """How many times each stream id appears across every segment file under ``root`` (listed
    or not; quarantine/ and tmp/ excluded). Every segment must read back whole."""
    ids: Counter = Counter()
    for path in sorted(root.glob(f"*/*{SUFFIX}")):
        if path.parent.name in ("quarantine", "tmp"):
            continue
        for line in iter_lines(path):
            ids[line_id(line)] += 1
    return ids


def check_manifest(root: Path) -> None:
    """Every listed segment verifies against the manifest, and every segment file is listed."""
    state = Manifest(root).load()
    for seg in state.segments:
        verify(root / seg.file, seg)
    on_disk = {str(p.relative_to(root)) for p in root.glob(f"*/*{SUFFIX}")
               if p.parent.name not in ("quarantine", "tmp")}
    assert on_disk == state.files(), f"unlisted: {on_disk - state.files()}, " \
                                     f"missing: {state.files() - on_disk}"


def stream_entry_ids(client, stream: str) -> list[str]:
    """Every id in the stream, oldest first."""
    out, cursor = [], "-"
    while True:
        rows = client.xrange(stream_key(stream), cursor, "+", count=5000)
        if not rows:
            return out
        out += [r[0].decode() for r in rows]
        ms, seq = parse_id(rows[-1][0])
        cursor = f"{ms}-{seq + 1}"


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
