"""TLS in userspace: the tracker switching a connection to libssl plaintext, setting aside raw
TLS records, and finding the libssl each target process maps (sidecar/capture/tlslibs.py)."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.capture.conntrack import ConnectionTracker
from sidecar.capture.events import Event, Kind
from sidecar.capture.metrics import CaptureMetrics
from sidecar.capture.tlslibs import TlsLibraries, libssl_maps

HELLO = bytes.fromhex("160301020001") + b"\x00" * 40  # a ClientHello's first bytes
REQ = b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _ev(kind, data=b"", pos=0, direction=0, aux=0, total=None, ts=1000):
    return Event(ts, pos, len(data) if total is None else total, aux, 0, 7, 5, len(data),
                 int(kind), direction, 2, 40000, bytes([127, 0, 0, 1]) + bytes(12), 0, data)


def _tracker(tls: bool):
    metrics = CaptureMetrics(CollectorRegistry())
    out = []
    return ConnectionTracker(emit=out.append, metrics=metrics, node="n", max_body=1 << 20,
                             tls=tls), out, metrics


def _errors(metrics, reason):
    return metrics.registry.get_sample_value("rewind_capture_parse_errors_total",
                                             {"reason": reason}) or 0


def test_handshake_then_plaintext_gives_one_tls_record():
    """With --tls, raw handshake bytes are set aside and the plaintext events that follow make
    one record flagged tls, with no parse error and no lost bytes."""
    t, out, m = _tracker(tls=True)
    t.on_event(_ev(Kind.ACCEPT))
    t.on_event(_ev(Kind.DATA, HELLO))
    t.on_event(_ev(Kind.DATA, b"\x16\x03\x03" + bytes(90), direction=1))
    t.on_event(_ev(Kind.TLS_DATA, REQ))
    t.on_event(_ev(Kind.TLS_DATA, RESP, direction=1))
    t.on_event(_ev(Kind.CLOSE, pos=len(REQ), total=len(RESP), aux=1))
    assert [(r.method, r.body, r.resp_body, r.tls) for r in out] == [("POST", b"abc", b"ok", True)]
    assert sum(_errors(m, r) for r in ("tls", "tls_undecrypted", "invalid_method")) == 0
    assert m.registry.get_sample_value("rewind_capture_lost_bytes_total") == 0


def test_without_tls_flag_a_handshake_says_run_with_tls():
    """Without --tls, a connection starting with a TLS record is one parse error "tls" and a
    log line saying to run with --tls; nothing is published."""
    t, out, m = _tracker(tls=False)
    with capture_logs() as logs:
        t.on_event(_ev(Kind.ACCEPT))
        t.on_event(_ev(Kind.DATA, HELLO))
        t.on_event(_ev(Kind.DATA, bytes.fromhex("170303") + bytes(50), pos=len(HELLO)))
        t.on_event(_ev(Kind.CLOSE, pos=len(HELLO) + 53))
    assert out == [] and _errors(m, "tls") == 1 and _errors(m, "invalid_method") == 0
    (line,) = [e for e in logs if e["event"] == "capture.tls_connection"]
    assert line["hint"] == "looks like TLS; run with --tls"


def test_tls_connection_without_plaintext_is_counted():
    """With --tls, a TLS connection whose library is not hooked (raw records only) is counted
    as tls_undecrypted when it ends."""
    t, out, m = _tracker(tls=True)
    t.on_event(_ev(Kind.ACCEPT))
    t.on_event(_ev(Kind.DATA, HELLO))
    t.on_event(_ev(Kind.CLOSE, pos=len(HELLO)))
    assert out == [] and _errors(m, "tls_undecrypted") == 1 and _errors(m, "tls") == 0


def test_plain_http_is_untouched_by_tls_mode():
    """With --tls, a plain HTTP connection is parsed from its syscall bytes, tls false."""
    t, out, _ = _tracker(tls=True)
    t.on_event(_ev(Kind.ACCEPT))
    t.on_event(_ev(Kind.DATA, REQ))
    t.on_event(_ev(Kind.DATA, RESP, direction=1))
    assert [(r.target, r.tls) for r in out] == [("/t", False)]


MAPS = """\
7f00-7f01 r--p 00000000 fd:01 111 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f01-7f02 r-xp 00001000 fd:01 111 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f03-7f04 r-xp 00000000 fd:01 222 /usr/lib/x86_64-linux-gnu/libssl3.so
7f05-7f06 r-xp 00000000 fd:01 333 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f07-7f08 r-xp 00000000 00:2a 444 /opt/app/lib/libssl.so.1.1 (deleted)
7f09-7f0a rw-p 00000000 00:00 0 [heap]
"""


def test_libssl_maps_finds_openssl_not_nss():
    """libssl.so.N is found once per (device, inode), with " (deleted)" cut; NSS's libssl3.so
    and libcrypto are not libssl."""
    assert libssl_maps(MAPS) == {("fd:01", 111): "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                                 ("00:2a", 444): "/opt/app/lib/libssl.so.1.1"}


def _proc(tmp_path, pid: int, maps: str):
    d = tmp_path / str(pid)
    d.mkdir()
    (d / "maps").write_text(maps)
    os.symlink(f"/bin/server-{pid}", d / "exe")


def test_libssl_hooked_per_process_and_missing_libssl_reported_once(tmp_path):
    """Each target process's libssl is hooked in that process, by the path seen through
    /proc/PID/root, and unhooked when it is gone; a process without libssl is logged once (pid,
    exe) and counted while it lives; a library that cannot be hooked is not tried again and
    leaves its processes unsupported."""
    bad = "7f07-7f08 r-xp 00000000 00:2a 444 /opt/app/lib/libssl.so.1.1\n"
    _proc(tmp_path, 10, MAPS.replace(bad.split()[-1], "/gone"))
    _proc(tmp_path, 11, MAPS.splitlines()[0] + "\n")
    _proc(tmp_path, 12, "7f09-7f0a rw-p 00000000 00:00 0 [heap]\n")
    _proc(tmp_path, 13, bad)
    _proc(tmp_path, 14, bad)
    attached, detached = [], []

    def attach(path, pid):
        attached.append((path, pid))
        if "libssl.so.1.1" in path:
            raise RuntimeError("SSL_read not found")
        return ["SSL_read", "SSL_write"]

    reg = CollectorRegistry()
    libs = TlsLibraries(attach, detached.append, registry=reg, proc=str(tmp_path))
    with capture_logs() as logs:
        libs.update({10, 11, 12, 13, 14})
        libs.update({10, 11, 12, 13, 14})
    lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
    assert attached == [(f"{tmp_path}/10/root{lib}", 10), (f"{tmp_path}/11/root{lib}", 11),
                        (f"{tmp_path}/13/root/opt/app/lib/libssl.so.1.1", 13)]
    assert [(e["pid"], e["exe"]) for e in logs if e["event"] == "capture.tls_unsupported"] == [
        (12, "/bin/server-12"), (13, "/bin/server-13"), (14, "/bin/server-14")]
    assert reg.get_sample_value("rewind_capture_tls_libraries") == 1
    assert reg.get_sample_value("rewind_capture_tls_unsupported_processes") == 3
    assert detached == [13]  # what its failed attach had hooked is removed
    libs.update({11})
    assert sorted(detached) == [10, 13]
    assert reg.get_sample_value("rewind_capture_tls_unsupported_processes") == 0
    assert reg.get_sample_value("rewind_capture_tls_libraries") == 1
