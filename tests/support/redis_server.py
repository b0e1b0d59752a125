"""A real ``redis-server`` for tests: free loopback port, temp dir, stopped and restarted at will.

Usage::

    with RedisServer() as server:  # started, answers PING
        r = server.client()  # bytes-returning redis.Redis
        server.restart()  # same port; empty again unless appendonly=True
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Self

import redis

__all__ = ["RedisServer"]


class RedisServer:
    """One ``redis-server`` process bound to 127.0.0.1, with no RDB snapshots.

    ``appendonly=True`` turns on the AOF with ``appendfsync always`` so the data survives
    ``stop()``/``restart()``; otherwise a restarted server is empty.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        executable: str = "redis-server",
        startup_timeout: float = 10.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.appendonly = appendonly
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.dir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._clients: list[redis.Redis] = []

    # -- properties --------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("RedisServer has no port yet: call start() first")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, **kwargs) -> redis.Redis:
        """A new bytes-returning client for this server (closed by ``close()``)."""
        c = redis.Redis.from_url(self.url, decode_responses=False, **kwargs)
        self._clients.append(c)
        return c

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> Self:
        """Start the server and wait until it answers; on failure nothing is left running."""
        if self.running:
            raise RuntimeError(f"redis-server already running on port {self.port}")
        path = shutil.which(self.executable)
        if path is None:
            raise RuntimeError(
                f"{self.executable!r} not found on PATH: install it (apt-get install redis-server)"
            )
        created_dir = self.dir is None
        if created_dir:
            self.dir = Path(tempfile.mkdtemp(prefix="rewind-redis-"))
        chosen_port = self.port is None
        attempts = 3 if chosen_port else 1  # a picked port can be taken before redis binds it
        try:
            for attempt in range(attempts):
                if chosen_port:
                    self.port = _free_port()
                try:
                    self._spawn(path)
                    return self
                except _PortInUse:
                    if attempt == attempts - 1:
                        raise RuntimeError(
                            f"redis-server could not bind port {self.port}"
                        ) from None
        except BaseException:
            if chosen_port:
                self.port = None
            if created_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server and wait for it to exit (SIGKILL after ``timeout``); idempotent."""
        for c in self._clients:
            c.close()
        self._clients.clear()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        _terminate(proc, timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no final AOF fsync)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
        self.stop()

    def restart(self) -> None:
        """Stop, then start again on the same port and in the same directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer port={self.port} {state} dir={self.dir}>"

    # -- internals -----------------------------------------------------------------------
    def _spawn(self, path: str) -> None:
        assert self.dir is not None and self.port is not None
        log = self.dir / "redis.log"
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.dir),
            "logfile": str(log),
            "daemonize": "no",
            "save": "",  # no RDB snapshots
            "appendonly": "yes" if self.appendonly else "no",
        }
        if self.appendonly:
            options["appendfsync"] = "always"
        args = [path]
        for name, value in options.items():
            args += [f"--{name}", value]
        args += self.extra_args
        with open(self.dir / "redis.out", "ab") as out:  # start-up errors go here, not to the log
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        finalizer = weakref.finalize(self, _terminate, proc, 5.0)
        probe = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=None,
        )
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                if proc.poll() is not None:
                    tail = _tail(self.dir / "redis.out") + "\n" + _tail(log)
                    if "Address already in use" in tail:
                        raise _PortInUse()
                    raise RuntimeError(
                        f"redis-server exited with {proc.returncode} on port {self.port}:\n{tail}"
                    )
                try:
                    pid = probe.info("server")["process_id"]
                except (redis.ConnectionError, redis.TimeoutError):
                    pid = None  # not listening yet, or still loading the AOF (BusyLoadingError)
                if pid == proc.pid:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer on port {self.port} within "
                        f"{self.startup_timeout}s:\n{_tail(log)}"
                    )
                # pid not ours: another server holds the port, and ours will exit (checked above)
                time.sleep(0.01)
        except BaseException:
            finalizer.detach()
            _terminate(proc, 5.0)
            raise
        finally:
            probe.close()
        self._proc = proc
        self._finalizer = finalizer


class _PortInUse(Exception):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate(proc: subprocess.Popen, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
