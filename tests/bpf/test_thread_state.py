"""The probe captures the same bytes in each way it can be built: one raw sys_exit program
(RAW_EXIT, the default), or a tracepoint pair per syscall with the arguments kept per thread in
BPF task storage (kernels with BTF) or in LRU hashes (TASK_STORAGE=0, kernels without BTF)."""

from __future__ import annotations

import os
import socket

import pytest

from sidecar.capture.events import Kind, decode
from sidecar.capture.probe import Probe


@pytest.mark.parametrize("raw_exit,task_storage", [(True, True), (False, True), (False, False)])
def test_request_and_response_bytes_come_out_exact(raw_exit, task_storage):
    """A request read with recv() and a response written with sendall() on an accepted
    connection come out as EV_DATA events carrying exactly those bytes, each way."""
    seen = []
    probe = Probe(lambda raw: seen.append(decode(bytes(raw))), ringbuf_pages=16,
                  self_tgid=99999, task_storage=task_storage, raw_exit=raw_exit)
    probe.load()
    try:
        assert probe.raw_exit == raw_exit
        assert f"-DTASK_STORAGE={int(task_storage)}" in probe.compiled_source()
        srv = socket.create_server(("127.0.0.1", 0))
        probe.set_listeners([(os.getpid(), srv.fileno())])
        client = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()
        client.sendall(b"GET /thread-state HTTP/1.1\r\n\r\n")
        got = conn.recv(4096)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        client.recv(4096)
        for _ in range(5):
            probe.poll(50)
        for s in (client, conn, srv):
            s.close()
    finally:
        probe.close()
    data = {d: b"".join(e.data for e in seen if e.kind == Kind.DATA and e.dir == d)
            for d in (0, 1)}
    assert got == b"GET /thread-state HTTP/1.1\r\n\r\n"
    assert data[0] == got
    assert data[1] == b"HTTP/1.1 204 No Content\r\n\r\n"
