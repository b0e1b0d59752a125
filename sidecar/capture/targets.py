"""Which sockets to capture: the listening sockets on one or more TCP ports, and the connections already
accepted from them, found through /proc (the root is passed in, so tests can point elsewhere).

A process is a target when it holds a socket listening on the port (every nginx or gunicorn
worker inherits the listening socket, so every worker is found), narrowed by ``pids`` or by
``cgroup``. Sockets are matched per network namespace: listeners come from sock_diag in the
sidecar's own namespace (sidecar/capture/sockdiag.py) and from /proc/PID/net/tcp{,6} in any
other; open connections, which only a newly found process needs (they are seeded), from
/proc/PID/net/tcp{,6} once per namespace, and only when a scan found a new process.

With ``pidns`` (a sidecar outside the host's PID namespace), only processes in that namespace
are targets: the probe names processes in it and cannot see others. A process that listens on
the port from another one is reported in ``Targets.other_pidns``, so it is never missed silently.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.capture import sockdiag
from sidecar.capture.procfs import PidNamespace

_LISTEN = "0A"
_OPEN_STATES = {"01", "08"}  # ESTABLISHED, CLOSE_WAIT: still readable/writable by the server


@dataclass
class Targets:
    """What a scan found: keys are (tgid, fd)."""

    listeners: set[tuple[int, int]] = field(default_factory=set)
    conns: dict[tuple[int, int], str] = field(default_factory=dict)  # -> peer "ip:port"
    other_pidns: set[int] = field(default_factory=set)  # listen on the port, outside ``pidns``

    @property
    def tgids(self) -> set[int]:
        return {t for t, _ in self.listeners}


@dataclass
class _Socket:
    state: str
    local_port: int
    peer: str


class TargetFinder:
    """Scans /proc for the sockets of one port (or several: an API on 8080 and 8443)."""

    def __init__(
        self,
        port: int | Iterable[int],
        *,
        pids: set[int] | None = None,
        cgroup: str | None = None,
        proc: str | os.PathLike = "/proc",
        self_pid: int | None = None,
        pidns: PidNamespace | None = None,
    ) -> None:
        ports = {port} if isinstance(port, int) else set(port)
        bad = sorted(p for p in ports if not 0 < p < 65536)
        if bad or not ports:
            raise ValueError(f"--port must be 1..65535, got {bad[0] if bad else 'nothing'}")
        self.ports = ports
        self.pids = set(pids) if pids else None
        self.cgroup = cgroup.rstrip("/") if cgroup else None
        self.proc = Path(proc)
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.pidns = None if pidns is None or pidns.is_host else pidns
        self._last_tgids: set[int] = set()
        self._diag_error: str | None = None
        try:
            self._own_netns = os.readlink("/proc/self/ns/net")  # the namespace sock_diag sees
        except OSError:
            self._own_netns = None

    def scan(self) -> Targets:
        """One pass over /proc; processes that vanish mid-scan are skipped. ``conns`` holds the
        open connections of processes found since the previous scan only (the first scan:
        all): they are what the capture seeds, and reading them means walking the kernel's
        whole table of connections, so a scan that finds no new process skips it."""
        found = Targets()
        holders: list[tuple[int, str, dict[int, int]]] = []  # pid, netns, fd -> socket inode
        for pid in self._candidates():
            inodes = self._socket_fds(pid)
            if not inodes:
                continue
            try:
                netns = os.readlink(self.proc / str(pid) / "ns" / "net")
            except OSError:
                netns = "?"
            holders.append((pid, netns, inodes))
        tables: dict[str, dict[int, _Socket]] = {}  # netns -> socket inode -> socket
        for pid, netns, inodes in holders:
            if netns not in tables:
                tables[netns] = self._listen_table(pid, netns)
            for fd, inode in inodes.items():
                sock = tables[netns].get(inode)
                if sock is not None and sock.state == _LISTEN:
                    found.listeners.add((pid, fd))
        if self.pidns is not None:
            found.other_pidns = {t for t in found.tgids if not self._in_pidns(t)}
            found.listeners = {k for k in found.listeners if k[0] not in found.other_pidns}
        tgids = found.tgids
        new = tgids - self._last_tgids
        self._last_tgids = tgids
        full: dict[str, dict[int, _Socket]] = {}
        for pid, netns, inodes in holders:
            if pid not in new:
                continue
            if netns not in full:
                full[netns] = self._tcp_table(pid)
            for fd, inode in inodes.items():
                sock = full[netns].get(inode)
                # An accepted socket shares its local port with outgoing connections only in
                # odd set-ups; only processes that also listen on the port are looked at.
                if sock is not None and sock.state in _OPEN_STATES:
                    found.conns[(pid, fd)] = sock.peer
        return found

    @property
    def listener_source(self) -> str:
        """Where listening sockets are read from: sock_diag, or /proc/PID/net/tcp{,6}."""
        return "sock_diag" if self._diag_error is None else f"/proc/net/tcp ({self._diag_error})"

    # -- internals ---------------------------------------------------------------------
    def _listen_table(self, pid: int, netns: str) -> dict[int, _Socket]:
        """Socket inode -> socket for the listeners on our ports in one network namespace:
        from sock_diag in our own (cheap: the kernel walks only its listeners), else from
        that process's /proc/PID/net/tcp{,6}."""
        if netns == self._own_netns and self._diag_error is None:
            try:
                return {s.inode: _Socket(_LISTEN, s.port, "") for s in sockdiag.listeners(self.ports)}
            except OSError as exc:  # no netlink here (seccomp, old kernel): /proc from now on
                self._diag_error = str(exc) or type(exc).__name__
        return self._tcp_table(pid)

    def _candidates(self) -> list[int]:
        if self.pids is not None:
            pids = sorted(self.pids)
        else:
            pids = sorted(int(p) for p in os.listdir(self.proc) if p.isdigit())
        return [p for p in pids if p != self.self_pid and self._in_cgroup(p)]

    def _in_cgroup(self, pid: int) -> bool:
        if self.cgroup is None:
            return True
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            path = line.split(":", 2)[-1].rstrip("/")
            if path == self.cgroup or path.startswith(self.cgroup + "/"):
                return True
        return False

    def _in_pidns(self, pid: int) -> bool:
        try:
            st = os.stat(self.proc / str(pid) / "ns" / "pid")
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self.pidns.dev, self.pidns.ino)

    def _socket_fds(self, pid: int) -> dict[int, int]:
        """fd -> socket inode for one process."""
        fd_dir = f"{self.proc}/{pid}/fd/"  # a str, not a Path: this runs for every fd each second
        out: dict[int, int] = {}
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return out
        readlink = os.readlink
        for name in names:
            try:
                link = readlink(fd_dir + name)
            except OSError:
                continue
            if link.startswith("socket:["):
                out[int(name)] = int(link[8:-1])
        return out

    def _tcp_table(self, pid: int) -> dict[int, _Socket]:
        """Socket inode -> socket, for the sockets on our ports that listen or are open (the
        others, TIME_WAIT ones by the thousand under load, are skipped before any parsing).
        The kernel walks every bucket of its connection hash for this read, whatever the
        number of sockets: it is read only for new processes and other namespaces."""
        table: dict[int, _Socket] = {}
        wanted = _OPEN_STATES | {_LISTEN}
        for name, v6 in (("tcp", False), ("tcp6", True)):
            try:
                lines = (self.proc / str(pid) / "net" / name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) < 10 or parts[3] not in wanted:
                    continue
                local_port = int(parts[1].rpartition(":")[2], 16)
                if local_port not in self.ports:
                    continue
                peer_ip, peer_port = _parse_addr(parts[2], v6)
                table[int(parts[9])] = _Socket(parts[3], local_port, _fmt_peer(peer_ip, peer_port))
        return table


def _parse_addr(text: str, v6: bool) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """/proc/net/tcp address "0100007F:1F90" (host-order 32-bit words) -> (ip, port)."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    # each 32-bit word is printed in host (little-endian) order
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.IPv6Address(raw) if v6 else ipaddress.IPv4Address(raw)
    return ip, int(hex_port, 16)


def _fmt_peer(ip, port: int) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"
