"""Which sockets to capture: the listening sockets on one or more TCP ports, and the connections already
accepted from them, found through /proc (the root is passed in, so tests can point elsewhere).

A process is a target when it holds a socket listening on the port (every nginx or gunicorn
worker inherits the listening socket, so every worker is found), narrowed by ``pids`` or by
``cgroup``. Sockets are matched per network namespace: /proc/PID/net/tcp is read once for each
namespace the candidate processes live in.

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

    def scan(self) -> Targets:
        """One pass over /proc; processes that vanish mid-scan are skipped."""
        found = Targets()
        tables: dict[str, dict[int, _Socket]] = {}  # netns -> socket inode -> socket
        for pid in self._candidates():
            inodes = self._socket_fds(pid)
            if not inodes:
                continue
            try:
                netns = os.readlink(self.proc / str(pid) / "ns" / "net")
            except OSError:
                netns = "?"
            if netns not in tables:
                tables[netns] = self._tcp_table(pid)
            table = tables[netns]
            for fd, inode in inodes.items():
                sock = table.get(inode)
                if sock is None or sock.local_port not in self.ports:
                    continue
                if sock.state == _LISTEN:
                    found.listeners.add((pid, fd))
                elif sock.state in _OPEN_STATES:
                    found.conns[(pid, fd)] = sock.peer
        if self.pidns is not None:
            found.other_pidns = {t for t in found.tgids if not self._in_pidns(t)}
            found.listeners = {k for k in found.listeners if k[0] not in found.other_pidns}
        # An accepted socket shares its local port with outgoing connections only in odd
        # set-ups; keep connections of processes that also listen on the port.
        tgids = found.tgids
        found.conns = {k: v for k, v in found.conns.items() if k[0] in tgids}
        return found

    # -- internals ---------------------------------------------------------------------
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
        fd_dir = self.proc / str(pid) / "fd"
        out: dict[int, int] = {}
        try:
            names = os.listdir(fd_dir)
        except OSError:
            return out
        for name in names:
            try:
                link = os.readlink(fd_dir / name)
            except OSError:
                continue
            if link.startswith("socket:["):
                out[int(name)] = int(link[8:-1])
        return out

    def _tcp_table(self, pid: int) -> dict[int, _Socket]:
        """Socket inode -> socket, for the sockets on our ports that listen or are open (the
        others, TIME_WAIT ones by the thousand under load, are skipped before any parsing:
        this runs every second)."""
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
