"""What the sidecar learns from /proc and from the target's own file descriptors, outside the
kernel probe: bytes a response sent with sendfile(), a peer address accept() did not return,
whether a process is still alive. The /proc root is passed in."""

from __future__ import annotations

import ctypes
import os
import socket

from sidecar.events import Event, peer

_SYS_PIDFD_GETFD = 438  # x86_64 and aarch64
_libc = ctypes.CDLL(None, use_errno=True)


class ProcFS:
    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def alive(self, tgid: int) -> bool:
        return os.path.exists(f"{self.root}/{tgid}")

    def read_sendfile(self, ev: Event) -> bytes | None:
        """The bytes a sendfile() sent: read again from the same file at the same offset.
        ``aux`` is the file's fd, ``aux2`` the offset (-1: the file position, which the call
        has already advanced by ``total``). None when the file cannot be read."""
        try:
            offset = ev.aux2
            if offset < 0:
                with open(f"{self.root}/{ev.tgid}/fdinfo/{ev.aux}") as f:
                    pos = next(int(line.split()[1]) for line in f if line.startswith("pos:"))
                offset = pos - ev.total
            fd = os.open(f"{self.root}/{ev.tgid}/fd/{ev.aux}", os.O_RDONLY)
            try:
                return os.pread(fd, ev.total, offset)
            finally:
                os.close(fd)
        except (OSError, StopIteration, ValueError):
            return None

    def find_peer(self, tgid: int, fd: int) -> str:
        """The peer of another process's socket, for servers whose accept() passes no address
        (Node.js): borrow the socket with pidfd_getfd(2) and ask getpeername(). "" on failure."""
        try:
            pidfd = os.pidfd_open(tgid)
        except OSError:
            return ""
        try:
            dup = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
            if dup < 0:
                return ""
            sock = socket.socket(fileno=dup)
            try:
                host, port = sock.getpeername()[:2]
            finally:
                sock.close()
        except OSError:
            return ""
        finally:
            os.close(pidfd)
        if ":" in host:
            return f"[{host}]:{port}" if not host.startswith("::ffff:") else f"{host[7:]}:{port}"
        return f"{host}:{port}"


__all__ = ["ProcFS", "peer"]
