"""--pid and --cgroup narrow capture to some of the processes that listen on the port."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.servers import gunicorn_flask

CGROUP2 = next((p for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
                if (p / "cgroup.procs").exists() and (p / "cgroup.subtree_control").exists()
                or (p / "cgroup.procs").exists() and p.name == "unified"), None)


def _workers(srv) -> list[int]:
    leader = srv.popen.pid
    return sorted(p for p in srv.pids() if p != leader)


def _captured_tgids(srv, redis_srv, *flags: str) -> set[int]:
    stream = new_stream("narrow")
    with CaptureProcess(srv.port, redis_srv.url, stream, *flags):
        subprocess.run(["wrk", "-t2", "-c40", "-d2s", f"{srv.url}/healthz"], check=True,
                       capture_output=True)
        recs = StreamReader(redis_srv.client(), stream).settle(lambda r: True, quiet=1.0)
    assert recs, "nothing captured"
    return {int(r.conn.split(":")[1]) for r in recs}


def test_pid_narrows_to_one_worker(redis_srv):
    """With --pid naming one gunicorn worker, only that worker's requests are captured, although
    both workers serve the port."""
    with gunicorn_flask("sync", workers=2) as srv:
        w1, w2 = _workers(srv)
        assert _captured_tgids(srv, redis_srv) == {w1, w2}  # both serve without narrowing
        assert _captured_tgids(srv, redis_srv, "--pid", str(w1)) == {w1}


@pytest.mark.skipif(CGROUP2 is None, reason="no cgroup v2 hierarchy mounted")
def test_cgroup_narrows_to_processes_in_it(redis_srv):
    """With --cgroup naming a cgroup that holds one gunicorn worker, only that worker is
    captured."""
    path = CGROUP2 / f"rewind-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        with gunicorn_flask("sync", workers=2) as srv:
            w1, _ = _workers(srv)
            (path / "cgroup.procs").write_text(str(w1))
            assert _captured_tgids(srv, redis_srv, "--cgroup", "/" + path.name) == {w1}
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            (CGROUP2 / "cgroup.procs").write_text(pid)
        os.rmdir(path)
