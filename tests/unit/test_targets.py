"""Finding listening sockets and open connections of a port through the real /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from sidecar.capture.procfs import HOST_PIDNS_INO, PidNamespace, ProcFS
from sidecar.capture.targets import TargetFinder, _parse_addr


def test_finds_own_listener_and_accepted_connection_but_not_self_when_excluded():
    """A listening socket and an accepted connection of this process are found by port, with
    the peer address; the process is skipped when it is the sidecar itself."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    try:
        found = TargetFinder(port, pids={os.getpid()}, self_pid=-1).scan()
        assert found.listeners == {(os.getpid(), srv.fileno())}
        assert found.conns == {(os.getpid(), conn.fileno()): f"127.0.0.1:{cli.getsockname()[1]}"}
        assert TargetFinder(port, pids={os.getpid()}).scan().listeners == set()
        other = TargetFinder(port + 1 if port < 65535 else port - 1, pids={os.getpid()}, self_pid=-1)
        assert other.scan().listeners == set()
    finally:
        for s in (cli, conn, srv):
            s.close()


def test_ipv6_listener_found():
    """A listener on ::1 is found through /proc/net/tcp6."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    srv = socket.socket(socket.AF_INET6)
    try:
        srv.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")
    srv.listen()
    try:
        found = TargetFinder(srv.getsockname()[1], pids={os.getpid()}, self_pid=-1).scan()
        assert found.listeners == {(os.getpid(), srv.fileno())}
    finally:
        srv.close()


def test_cgroup_filter_matches_own_cgroup_only():
    """--cgroup keeps processes in that cgroup (or below) and nothing else."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    mine = open("/proc/self/cgroup").read().splitlines()[-1].split(":", 2)[-1]
    try:
        assert TargetFinder(port, cgroup=mine, self_pid=-1).scan().listeners
        assert not TargetFinder(port, cgroup="/no/such/cgroup", self_pid=-1).scan().listeners
    finally:
        srv.close()


def test_proc_net_address_parsing():
    """Addresses in /proc/net/tcp{,6} are host-order words: decoded to the right ip and port."""
    ip, port = _parse_addr("0100007F:1F90", v6=False)
    assert (str(ip), port) == ("127.0.0.1", 8080)
    ip, port = _parse_addr("00000000000000000000000001000000:0050", v6=True)
    assert (str(ip), port) == ("::1", 80)


def test_bad_port_rejected():
    """A port outside 1..65535 is refused with a message naming the flag."""
    with pytest.raises(ValueError, match="--port"):
        TargetFinder(0)


def test_a_listener_outside_the_sidecars_pid_namespace_is_reported_not_targeted():
    """With the sidecar in a PID namespace of its own, a process listening on the port from
    another namespace is reported in other_pidns (and not targeted: the probe cannot name it);
    in its own namespace it is targeted."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    own = ProcFS().pid_namespace()
    try:
        elsewhere = TargetFinder(port, pids={os.getpid()}, self_pid=-1,
                                 pidns=PidNamespace(own.dev, own.ino + 1)).scan()
        assert elsewhere.listeners == set() and elsewhere.other_pidns == {os.getpid()}
        here = TargetFinder(port, pids={os.getpid()}, self_pid=-1,
                            pidns=PidNamespace(own.dev, own.ino)).scan()
        assert here.listeners == {(os.getpid(), srv.fileno())} and here.other_pidns == set()
    finally:
        srv.close()


def test_host_pid_namespace_targets_every_namespace():
    """In the host's PID namespace nothing is filtered: the probe names every process there."""
    finder = TargetFinder(8080, pidns=PidNamespace(4, HOST_PIDNS_INO))
    assert finder.pidns is None


def test_connections_are_read_for_new_processes_only_and_listeners_every_scan():
    """A second scan still finds the listener (from sock_diag) but no longer reads the open
    connections of a process it already found: only new processes are seeded."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    try:
        finder = TargetFinder(port, pids={os.getpid()}, self_pid=-1)
        first, second = finder.scan(), finder.scan()
        assert finder.listener_source == "sock_diag"
        assert first.listeners == second.listeners == {(os.getpid(), srv.fileno())}
        assert set(first.conns) == {(os.getpid(), conn.fileno())}
        assert second.conns == {}
    finally:
        for s in (cli, conn, srv):
            s.close()


def test_listener_in_another_network_namespace_is_found_through_its_proc_table():
    """sock_diag sees only the sidecar's network namespace: a process listening in another one
    is still found, through its own /proc/PID/net/tcp."""
    if os.geteuid() != 0:
        pytest.skip("unshare --net needs root")
    port = 18000 + os.getpid() % 1000
    child = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c",
         f"import socket,sys,time; s=socket.create_server(('0.0.0.0', {port})); "
         "print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        assert os.readlink(f"/proc/{child.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        found = TargetFinder(port, pids={child.pid}, self_pid=-1).scan()
        assert {pid for pid, _ in found.listeners} == {child.pid}
    finally:
        child.kill()
        child.wait()
