"""Process ids in every PID namespace set-up the sidecar runs in, with `unshare` (the pod cases in
real containers are in tests/containers): the sidecar and the API in one namespace of their own
(a pod with shareProcessNamespace), the sidecar in the host's namespace and the API in a
container's below it (hostPID, the scheduled capture), an API in a namespace the sidecar cannot
name (reported), and both on the host (every other test in tests/bpf)."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time

import psutil

from tests.bpf.conftest import new_stream
from tests.support.capture import REPO, CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request
from tests.support.servers import free_port

NEW_PIDNS = ["unshare", "--pid", "--fork", "--mount-proc"]


def echo_server(port: int) -> str:
    """Shell lines that start the echo server on ``port`` in the background (its pid in "$!"
    afterwards) and wait until it listens."""
    return (f"{shlex.quote(sys.executable)} ci/testservers/echo_http_server.py --port {port} "
            f"--host 127.0.0.1 >/dev/null 2>&1 &\n"
            f"server=$!\n"
            f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.1; done\n")


class NsCapture(CaptureProcess):
    """rewind-capture as process 1 of a new PID namespace, where ``setup`` (shell) ran first;
    ``more`` is appended to its command line unquoted (e.g. '--pid "$server"')."""

    def __init__(self, setup: str, more: str, port: int, redis_url: str, stream: str) -> None:
        super().__init__(port, redis_url, stream)
        self.argv = [*NEW_PIDNS, "bash", "-c", f"{setup}exec {shlex.join(self.argv)} {more}"]

    def stop(self, timeout: float = 30.0) -> int:
        # unshare blocks SIGTERM while it waits for its child: stop the capture itself
        if self.proc is not None and self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children():
                child.send_signal(signal.SIGTERM)
        return super().stop(timeout)


def exchange(port: int, path: str, body: bytes) -> tuple[bytes, bytes]:
    """One POST on its own connection (waiting up to 10 s for the port to listen): (request
    bytes sent, response body received)."""
    raw = request("POST", path, body, [("X-Ns", "1")])
    deadline = time.monotonic() + 10
    while True:
        try:
            s = connect(port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    s.sendall(raw)
    (resp,) = read_responses(s, 1)
    s.close()
    return raw, bytes(resp.body)


def test_sidecar_and_api_in_their_own_pid_namespace(redis_srv):
    """As in a pod with shareProcessNamespace: the probe names processes as the sidecar's /proc
    does, so `--pid` takes the API's pid in that namespace and every request is captured
    byte-exact, with that pid in the connection id (before, nothing was captured)."""
    port, stream = free_port(), new_stream("pidns")
    with NsCapture(echo_server(port), '--pid "$server"', port, redis_srv.url, stream) as cap:
        ready = cap.wait_log("capture.ready")
        assert ready["pid_namespace"] == "own"
        (api_pid,) = ready["processes"]
        assert api_pid < 10  # its pid in the new namespace, not the host's
        sent = [exchange(port, f"/ns/{i}", b"b" * (i * 1000)) for i in range(5)]
        recs = StreamReader(redis_srv.client(), stream).wait(lambda r: r.target.startswith("/ns/"), 5)
    assert [(r.request_bytes(), r.resp_body) for r in recs] == sent
    assert {int(r.conn.split(":")[1]) for r in recs} == {api_pid}
    assert cap.proc.returncode == 0, cap.log_text()


def test_api_in_a_pid_namespace_below_the_host_capture(redis_srv):
    """As the scheduled capture runs (hostPID): a sidecar in the host's PID namespace captures an
    API in a container's namespace below it, named by its host pid."""
    port, stream = free_port(), new_stream("hostpid")
    server = subprocess.Popen([*NEW_PIDNS, "bash", "-c", echo_server(port) + "wait"], cwd=REPO,
                              start_new_session=True)
    try:
        exchange(port, "/warm-up", b"")  # listening
        host_pid = next(p.pid for p in psutil.Process(server.pid).children(recursive=True)
                        if p.cmdline()[1:2] == ["ci/testservers/echo_http_server.py"])
        with CaptureProcess(port, redis_srv.url, stream) as cap:
            ready = cap.wait_log("capture.ready")
            assert ready["pid_namespace"] == "host" and ready["processes"] == [host_pid]
            sent = [exchange(port, f"/host/{i}", b"h" * i) for i in range(3)]
            recs = StreamReader(redis_srv.client(), stream).wait(
                lambda r: r.target.startswith("/host/"), 3)
        assert [(r.request_bytes(), r.resp_body) for r in recs] == sent
        assert {int(r.conn.split(":")[1]) for r in recs} == {host_pid}
    finally:
        psutil.Process(server.pid).children(recursive=True)[0].kill()  # namespace init: all go
        server.wait(10)


def test_api_in_a_namespace_the_probe_cannot_name_is_reported(redis_srv):
    """An API that listens on the port from a PID namespace below the sidecar's own (not the
    host's) cannot be named by the probe: the sidecar says so in its log instead of silently
    capturing nothing."""
    port, stream = free_port(), new_stream("nested")
    nested = f"{shlex.join(NEW_PIDNS[:3])} bash -c {shlex.quote(echo_server(port) + 'wait')} &\n"
    nested += f"until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.1; done\n"
    with NsCapture(nested, "", port, redis_srv.url, stream) as cap:
        warning = cap.wait_log("capture.other_pid_namespace")
        assert cap.wait_log("capture.ready")["processes"] == []
    assert len(warning["pids"]) == 1 and "hostPID" in warning["hint"]


SELF_EXCLUSION = """
import json, os, socket, sys
from sidecar.capture.events import decode
from sidecar.capture.probe import Probe
seen = []
probe = Probe(lambda raw: seen.append(decode(bytes(raw))), ringbuf_pages=16,
              self_tgid=None if sys.argv[1] == "self" else 99999)
probe.load()
srv = socket.create_server(("127.0.0.1", 0))
probe.set_listeners([(os.getpid(), srv.fileno())])
client = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
probe.poll(200)
print(json.dumps({"pid": os.getpid(), "tgids": [e.tgid for e in seen]}))
"""


def test_self_exclusion_uses_the_pid_of_the_sidecars_namespace():
    """In its own PID namespace the probe skips the sidecar by its pid there: its own accepted
    connection yields no event, while with another self pid the same accept is seen, named by
    the namespace's pid."""
    out = {}
    for who in ("self", "other"):
        run = subprocess.run([*NEW_PIDNS, sys.executable, "-c", SELF_EXCLUSION, who], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        out[who] = json.loads(run.stdout.splitlines()[-1])
    assert out["self"]["tgids"] == []
    assert out["other"]["tgids"] == [out["other"]["pid"]] == [1]
