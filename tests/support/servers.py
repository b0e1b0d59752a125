"""Real HTTP servers on a free loopback port, started and stopped from Python.

Capture tests, benchmarks and the demo start one of these, point a probe at `.port`, send
traffic with real clients and compare what was captured with what was sent.

    with nginx() as srv:            # or python_http_server(), node_http_server(), gunicorn_flask()
        requests.post(srv.url + "/x", data=b"...")
        srv.pids()                  # every process serving the port (master and workers)
    # leaving the block stops the whole process group and checks nothing is left

The echo servers (Python, Node, the demo API's /echo) answer JSON
{method, path, query, body_len, body_sha256, headers: [[name, value], ...]}.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import psutil

__all__ = [
    "REPO",
    "asyncio_https_server",
    "Server",
    "ServerStartError",
    "free_port",
    "gunicorn_flask",
    "nginx",
    "node_http_server",
    "python_http_server",
    "self_signed_cert",
    "start_server",
    "stateful_api",
]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
NGINX = "/usr/sbin/nginx"
_PORT_TAKEN = ("address already in use", "eaddrinuse", "connection in use")
_live: set[Server] = set()


class ServerStartError(RuntimeError):
    """A server exited or did not become ready in time; the message ends with its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One running server: its process group, port and scratch folder (logs, config, data)."""

    def __init__(self, name: str, popen: subprocess.Popen, port: int, workdir: Path,
                 log_files: tuple[str, ...] = ()):
        self.name = name
        self.popen = popen
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.workdir = workdir
        self._log_files = ("output.log",) + tuple(log_files)
        self._stopped = False

    def pids(self) -> list[int]:
        """The leader's pid and every live descendant (nginx/gunicorn master and workers)."""
        try:
            leader = psutil.Process(self.popen.pid)
            procs = [leader] + leader.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p.pid for p in procs if _alive(p)]

    def log(self, tail: int = 4000) -> str:
        """The last `tail` characters of the server's output and its own log files."""
        parts = []
        for name in self._log_files:
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace")[-tail:]
                parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the leader (it stops its workers), then SIGKILL the group; leave nothing."""
        if self._stopped:
            return
        self._stopped = True
        _live.discard(self)
        pgid = self.popen.pid  # start_new_session=True: the leader's pid is the group id
        procs = _group(pgid)
        try:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        procs += _group(pgid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(5)
        deadline = time.monotonic() + 5
        while (alive := [p for p in procs if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if alive:
            raise RuntimeError(f"{self.name}: processes left after stop: {[p.pid for p in alive]}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.url} pid={self.popen.pid}>"


def start_server(
    name: str,
    argv: Callable[[int, Path], list[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    min_procs: int = 1,
    ready: Callable[[Server], bool] | None = None,
    log_files: tuple[str, ...] = (),
    timeout: float = 20.0,
    server_class: type[Server] = Server,
) -> Server:
    """Start `argv(port, workdir)` in its own process group on a free port and wait until ready.

    Ready means: the port accepts TCP connections, at least `min_procs` processes are up and
    `ready(server)` (if given) is true. A port taken between choosing and binding it is retried
    on another port.
    """
    for attempt in range(3):
        workdir = Path(tempfile.mkdtemp(prefix=f"rewind-{name}-"))
        port = free_port()
        command = argv(port, workdir)
        with open(workdir / "output.log", "wb") as out:  # the child keeps its own copy
            popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
            )
        server = server_class(name, popen, port, workdir, log_files)
        _live.add(server)
        error = _wait_ready(server, min_procs, ready, timeout)
        if error is None:
            return server
        output = server.log()
        server.stop()
        if attempt < 2 and any(s in output.lower() for s in _PORT_TAKEN):
            continue
        raise ServerStartError(f"{name} ({' '.join(command)}): {error}\n{output}")
    raise AssertionError("unreachable")


def _wait_ready(server: Server, min_procs: int, ready, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.popen.poll()
        if code is not None:
            return f"exited with code {code} before it was ready"
        if (_accepts(server.port) and len(server.pids()) >= min_procs
                and (ready is None or ready(server))):
            return None
        time.sleep(0.05)
    return f"not ready after {timeout:.0f} s (port {server.port}, processes {server.pids()})"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _alive(proc: psutil.Process) -> bool:
    # pid 1 here does not reap orphans: a zombie serves nothing and counts as gone.
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pgid: int) -> list[psutil.Process]:
    procs = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                procs.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return procs


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        try:
            server.stop()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # say so, go on
            print(f"tests.support.servers: stopping {server!r} failed: {exc}", file=sys.stderr)


# --- starters -------------------------------------------------------------------------------

def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost made with `openssl req`: (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


def python_http_server(timeout: float = 20.0, *, tls: bool = False) -> Server:
    """ci/testservers/echo_http_server.py: ThreadingHTTPServer, HTTP/1.1 keep-alive, echo JSON.
    With `tls=True` it serves HTTPS with a self-signed certificate (`srv.url` is https://)."""
    script = REPO / "ci" / "testservers" / "echo_http_server.py"

    def argv(port: int, workdir: Path) -> list[str]:
        extra = []
        if tls:
            cert, key = self_signed_cert(workdir)
            extra = ["--tls-cert", str(cert), "--tls-key", str(key)]
        return [sys.executable, str(script), "--host", HOST, "--port", str(port), *extra]

    srv = start_server("python-https" if tls else "python-http", argv,
                       env={"PYTHONUNBUFFERED": "1"}, timeout=timeout)
    if tls:
        srv.url = f"https://{HOST}:{srv.port}"
    return srv


def asyncio_https_server(timeout: float = 20.0) -> Server:
    """ci/testservers/echo_asyncio_server.py: HTTPS through asyncio's memory BIOs, echo JSON."""
    script = REPO / "ci" / "testservers" / "echo_asyncio_server.py"

    def argv(port: int, workdir: Path) -> list[str]:
        cert, key = self_signed_cert(workdir)
        return [sys.executable, str(script), "--host", HOST, "--port", str(port),
                "--tls-cert", str(cert), "--tls-key", str(key)]

    srv = start_server("asyncio-https", argv, env={"PYTHONUNBUFFERED": "1"}, timeout=timeout)
    srv.url = f"https://{HOST}:{srv.port}"
    return srv


def node_http_server(timeout: float = 20.0) -> Server:
    """ci/testservers/echo_node_server.js on Node's http module: keep-alive, echo JSON."""
    node = shutil.which("node")
    if node is None:
        raise ServerStartError("node is not on PATH")
    script = REPO / "ci" / "testservers" / "echo_node_server.js"
    return start_server(
        "node-http",
        lambda port, _: [node, str(script), "--host", HOST, "--port", str(port)],
        timeout=timeout,
    )


def gunicorn_flask(worker_class: str = "sync", workers: int = 2, threads: int = 4, *,
                   regression: bool = False, db_path: str | None = None,
                   timeout: float = 30.0) -> Server:
    """The demo API (ci.demo_api.app:app) under gunicorn; the SQLite file is in the workdir.

    `threads` applies to gthread only; the sync worker closes the connection after each
    response. `regression=True` sets DEMO_API_REGRESSION=1 (slower, summary answers 500).
    """
    if worker_class not in ("sync", "gthread"):
        raise ValueError(f"worker_class must be 'sync' or 'gthread', not {worker_class!r}")
    if workers < 1 or threads < 1:
        raise ValueError("workers and threads must be at least 1")
    env = {"DEMO_API_REGRESSION": "1" if regression else "0", "PYTHONUNBUFFERED": "1"}

    def argv(port: int, workdir: Path) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--env", f"DEMO_API_DB={db_path or workdir / 'demo-api.sqlite3'}",
            "--bind", f"{HOST}:{port}",
            "--chdir", str(REPO),  # gunicorn puts this folder on sys.path: `ci` imports
            "--worker-class", worker_class,
            "--workers", str(workers),
            # gunicorn silently turns "sync" with threads > 1 into gthread: threads only for gthread
            "--threads", str(threads if worker_class == "gthread" else 1),
            "--keep-alive", "5",
            "--graceful-timeout", "3",
            "--backlog", "2048",
            *_gunicorn_no_control_socket(),
            "ci.demo_api.app:app",
        ]

    return start_server("gunicorn", argv, env=env, min_procs=1 + workers, timeout=timeout)


def stateful_api(workers: int = 2, threads: int = 4, *, regression: bool = False,
                 timeout: float = 30.0) -> Server:
    """The stateful sample API (ci.stateful_api.app:app) under gunicorn gthread, a fresh SQLite
    file in the workdir; `regression=True` sets STATEFUL_API_REGRESSION=1."""
    env = {"STATEFUL_API_REGRESSION": "1" if regression else "0", "PYTHONUNBUFFERED": "1"}

    def argv(port: int, workdir: Path) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn",
            "--env", f"STATEFUL_API_DB={workdir / 'stateful-api.sqlite3'}",
            "--bind", f"{HOST}:{port}", "--chdir", str(REPO),
            "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
            "--keep-alive", "5", "--graceful-timeout", "3",
            *_gunicorn_no_control_socket(),
            "ci.stateful_api.app:app",
        ]

    return start_server("gunicorn-stateful", argv, env=env, min_procs=1 + workers,
                        timeout=timeout)


def _gunicorn_no_control_socket() -> list[str]:
    # gunicorn >= 25 opens a control socket at one per-user path: parallel instances would fight.
    from gunicorn.config import Config

    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []


def nginx(mode: str = "return200", *, access_log: bool = True, open_file_cache: bool = False,
          tls: bool = False, timeout: float = 20.0) -> Server:
    """Debian's nginx, master + 2 workers, with a config generated in the workdir.

    With `tls=True`, `srv.port` speaks HTTPS with a self-signed certificate (`srv.url` is
    https://) and the same site also listens for plain HTTP on `srv.plain_port`.

    mode "return200": every request is answered `200 ok\\n` (the body is read and discarded).
    mode "static": files under `workdir/www` are served with sendfile(2).
    mode "echo_len": nginx reads the whole body (Content-Length or chunked), passes it to an
    internal server on a unix socket and answers `200 <body length>\\n`.
    """
    if mode not in ("return200", "echo_len", "static"):
        raise ValueError(f"mode must be 'return200', 'echo_len' or 'static', not {mode!r}")

    plain: list[int] = []

    def argv(port: int, workdir: Path) -> list[str]:
        conf = workdir / "nginx.conf"
        text = _nginx_conf(port, workdir, mode, access_log, open_file_cache)
        if tls:
            cert, key = self_signed_cert(workdir)
            plain[:] = [free_port()]
            text = text.replace(f"listen {HOST}:{port} backlog=4096;",
                                f"listen {HOST}:{port} ssl backlog=4096;\n"
                                f"        listen {HOST}:{plain[0]} backlog=4096;\n"
                                f"        ssl_certificate {cert};\n"
                                f"        ssl_certificate_key {key};", 1)
        conf.write_text(text)
        return [NGINX, "-p", str(workdir), "-c", str(conf), "-e", "stderr"]

    srv = start_server("nginx", argv, min_procs=3, log_files=("error.log",), timeout=timeout)
    if tls:
        srv.url, srv.plain_port = f"https://{HOST}:{srv.port}", plain[0]
    return srv


def _nginx_conf(port: int, work: Path, mode: str, access_log: bool, file_cache: bool) -> str:
    if mode == "static":
        (work / "www").mkdir(exist_ok=True)
        cache = "open_file_cache max=100 inactive=60s;" if file_cache else "open_file_cache off;"
        site = f"""
    server {{
        listen {HOST}:{port} backlog=4096;
        root {work}/www;
        sendfile on;
        {cache}
    }}"""
    elif mode == "return200":
        site = f"""
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}"""
    else:
        site = f"""
    map $content_length $body_len {{ "" 0; default $content_length; }}
    upstream body_len {{ server unix:{work}/len.sock; keepalive 32; }}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://body_len;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen unix:{work}/len.sock;
        location / {{ return 200 "$body_len\\n"; }}
    }}"""
    log = f"access_log {work}/access.log combined buffer=64k flush=1s;" if access_log \
        else "access_log off;"
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the 0700 workdir
    return f"""# generated by tests/support/servers.py
daemon off;
master_process on;
{user}
worker_processes 2;
worker_rlimit_nofile 65536;
pid {work}/nginx.pid;
error_log {work}/error.log warn;

events {{
    worker_connections 10000;
}}

http {{
    {log}
    default_type text/plain;
    client_max_body_size 64m;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000;
{site}
}}
"""
