"""What the sidecar learns from /proc and from the target's own file descriptors, outside the
kernel probe: bytes a response sent with sendfile(), a peer address accept() did not return,
whether a process is still alive, which PID namespace a process is in. The /proc root is
passed in."""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import struct
from typing import NamedTuple

from sidecar.capture.events import Event, peer

_SYS_PIDFD_GETFD = 438  # x86_64 and aarch64
# read-family syscall numbers -> iovec-based?  (recvmsg: the iovec sits in a struct msghdr)
_READS = {
    "x86_64": {0: "read", 19: "readv", 45: "recvfrom", 47: "recvmsg"},
    "aarch64": {63: "read", 65: "readv", 207: "recvfrom", 212: "recvmsg"},
}.get(platform.machine(), {})
_ACCEPTS = {"x86_64": {43, 288}, "aarch64": {202, 242}}.get(platform.machine(), set())


# The inode number of the kernel's initial ("host") PID namespace: a constant (PROC_PID_INIT_INO).
HOST_PIDNS_INO = 0xEFFFFFFC


class PidNamespace(NamedTuple):
    """A PID namespace as the kernel names it: st_dev and st_ino of /proc/PID/ns/pid."""

    dev: int
    ino: int

    @property
    def is_host(self) -> bool:
        """The initial namespace: its process ids are the ones bpf_get_current_pid_tgid() gives."""
        return self.ino == HOST_PIDNS_INO


class BlockedRead(NamedTuple):
    """A thread sleeping in a read of a socket (seen in /proc/PID/task/TID/syscall)."""

    tid: int
    nr: int
    fd: int
    buf: int  # user buffer, or the iovec array for readv/recvmsg
    iovcnt: int  # 0 for a plain buffer


class BlockedAccept(NamedTuple):
    """A thread sleeping in accept()/accept4() on a listening socket."""

    tid: int
    fd: int  # the listening socket
    addr: int  # the sockaddr pointer accept will fill (0: none)


_libc = ctypes.CDLL(None, use_errno=True)


class ProcFS:
    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def alive(self, tgid: int) -> bool:
        return os.path.exists(f"{self.root}/{tgid}")

    def pid_namespace(self, pid: int | str = "self") -> PidNamespace:
        """The PID namespace of a process (default: this one); OSError when it is gone."""
        st = os.stat(f"{self.root}/{pid}/ns/pid")
        return PidNamespace(st.st_dev, st.st_ino)

    def foreign_view(self, own_pid: int | None = None) -> str | None:
        """Why this /proc cannot name processes as the probe does, or None when it can: it must
        be a procfs of our own PID namespace (a host /proc bind-mounted into a container
        without the host's PID namespace is not)."""
        own_pid = os.getpid() if own_pid is None else own_pid
        try:
            seen = os.readlink(f"{self.root}/self")
        except OSError as exc:
            return f"{self.root}/self cannot be read ({exc.strerror}): is procfs mounted there?"
        if seen != str(own_pid):
            return (f"{self.root} belongs to another PID namespace than the sidecar's ({self.root}/self "
                    f"is {seen}, the sidecar is {own_pid}): mount a procfs of the sidecar's own "
                    "namespace, or run it in the host's (hostPID)")
        return None

    def read_sendfile(self, ev: Event, moved=None) -> bytes | None:
        """The bytes a sendfile() sent: read again from the same file at the same offset.
        ``aux`` is the file's fd, ``aux2`` the offset. aux2 < 0: the call used the file
        position, which it and any later such call have moved since; -1 - aux2 is the running
        total of bytes such calls sent from the fd after this one (bpf/capture.h, EV_SENDFILE),
        and ``moved(tgid, fd)`` the total now (Probe.sendfile_moved), so the call began at
        position - (now - after) - total. Without both totals, or when the total changed while
        the position was read, the bytes cannot be placed: None, as when the file cannot be
        read (the record is flagged, never given other bytes)."""
        try:
            offset = ev.aux2
            if offset < 0:
                after = -1 - offset
                before = moved(ev.tgid, ev.aux) if moved is not None and after else None
                if before is None:
                    return None
                with open(f"{self.root}/{ev.tgid}/fdinfo/{ev.aux}") as f:
                    pos = next(int(line.split()[1]) for line in f if line.startswith("pos:"))
                if moved(ev.tgid, ev.aux) != before:
                    return None  # another call moved the position meanwhile
                offset = pos - (before - after) - ev.total
                if offset < 0:
                    return None
            fd = os.open(f"{self.root}/{ev.tgid}/fd/{ev.aux}", os.O_RDONLY)
            try:
                return os.pread(fd, ev.total, offset)
            finally:
                os.close(fd)
        except (OSError, StopIteration, ValueError):
            return None

    def _blocked_calls(self, tgid: int, nrs) -> list[tuple[int, int, list[int]]]:
        """(tid, syscall nr, args) of threads of ``tgid`` sleeping in one of ``nrs`` right now
        (/proc/PID/task/TID/syscall)."""
        out = []
        try:
            tids = os.listdir(f"{self.root}/{tgid}/task")
        except OSError:
            return out
        for tid in tids:
            try:
                with open(f"{self.root}/{tgid}/task/{tid}/syscall") as f:
                    parts = f.read().split()
            except OSError:
                continue
            if len(parts) >= 4 and parts[0].isdigit() and int(parts[0]) in nrs:
                out.append((int(tid), int(parts[0]), [int(a, 16) for a in parts[1:4]]))
        return out

    def blocked_accepts(self, tgid: int, fds: set[int]) -> list[BlockedAccept]:
        """Threads blocked in accept()/accept4() on one of ``fds`` (gunicorn sync workers sleep
        there): handed to the probe so the connection that accept returns is tracked."""
        calls = self._blocked_calls(tgid, _ACCEPTS)
        return [BlockedAccept(int(tid), a[0], a[1]) for tid, _, a in calls if a[0] in fds]

    def blocked_reads(self, tgid: int, fds: set[int]) -> list[BlockedRead]:
        """Threads of ``tgid`` blocked right now in a read of one of ``fds``. Their syscall
        entered before capture started, so the probe never saw its arguments; the capture
        hands them to the probe so the bytes that read returns are not missed."""
        out = []
        for tid, nr, (fd, a2, a3) in self._blocked_calls(tgid, _READS):
            if fd not in fds:
                continue
            name = _READS[nr]
            if name in ("read", "recvfrom"):
                out.append(BlockedRead(int(tid), nr, fd, a2, 0))
            elif name == "readv":
                out.append(BlockedRead(int(tid), nr, fd, a2, a3))
            else:  # recvmsg: msg_iov and msg_iovlen at offsets 16 and 24 of struct msghdr
                try:
                    with open(f"{self.root}/{tgid}/mem", "rb", buffering=0) as mem:
                        mem.seek(a2 + 16)
                        iov, iovlen = struct.unpack("<QQ", mem.read(16))
                except (OSError, struct.error):
                    continue
                out.append(BlockedRead(int(tid), nr, fd, iov, iovlen))
        return out

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


__all__ = ["BlockedAccept", "BlockedRead", "HOST_PIDNS_INO", "PidNamespace", "ProcFS", "peer"]
