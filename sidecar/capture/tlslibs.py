"""With --tls: which libssl each target process maps, so the probe's uprobes are attached to
it, and which target processes cannot be decrypted.

The libraries are found in /proc/PID/maps and attached by the path as the process sees it,
through /proc/PID/root, so a server in a container with its own libssl is covered. The uprobes
are attached per process (the kernel plants breakpoints only in the processes asked for), not
once per library file for the whole machine: a system-wide uprobe traps in every process
using that file, a load generator on the same host or the other replicas of the API, and cost
half of nginx's HTTPS throughput in the benchmark. They are removed when the process is gone.
A library is identified by the (device, inode) the maps line gives; one that cannot be hooked
is not tried again. A target process with no usable libssl (Go's crypto/tls, a statically
linked OpenSSL, another TLS library) is reported once in the log (``capture.tls_unsupported``)
and counted in a gauge while it lives; it is looked at again on each rescan, in case it loads
libssl later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog
from prometheus_client import Gauge

__all__ = ["TlsLibraries", "libssl_maps"]

# OpenSSL's (and LibreSSL's, BoringSSL's shared build's) library; not NSS's libssl3.so.
_LIBSSL = re.compile(r"/libssl\.so(\.[0-9][0-9.]*)?$")


def libssl_maps(maps_text: str) -> dict[tuple[str, int], str]:
    """/proc/PID/maps text -> {(device, inode): path} of the libssl files it maps."""
    out: dict[tuple[str, int], str] = {}
    for line in maps_text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        if _LIBSSL.search(path):
            out.setdefault((parts[3], int(parts[4])), path)
    return out


class TlsLibraries:
    """Keeps the uprobes on the libssl of every target process.

    ``attach(path, pid)`` hooks one library file in one process and returns the functions hooked
    (``Probe.attach_tls``); it raises to say the library cannot be used, which makes the process
    unsupported. ``detach(pid)`` removes a process's uprobes (``Probe.detach_tls``)."""

    def __init__(self, attach: Callable[[str, int], list[str]], detach: Callable[[int], None], *,
                 registry, proc: str = "/proc", log=None) -> None:
        self._attach, self._detach = attach, detach
        self._proc = Path(proc)
        self._log = log or structlog.get_logger("rewind.capture")
        self._bad: set[tuple[str, int]] = set()  # (dev, inode) of libraries that cannot be hooked
        self._done: dict[int, set[tuple[str, int]]] = {}  # hooked process -> its libraries
        self._unsupported: set[int] = set()  # live targets with no usable libssl
        self._reported: set[int] = set()
        self.libraries = Gauge("rewind_capture_tls_libraries",
                               "libssl files hooked with uprobes (--tls)", registry=registry)
        self.unsupported = Gauge(
            "rewind_capture_tls_unsupported_processes",
            "Target processes with no hooked libssl (statically linked or another TLS library): "
            "their TLS traffic is not captured", registry=registry)

    def update(self, tgids: Iterable[int]) -> None:
        """Hook the libssl of target processes not seen yet (and retry unsupported ones)."""
        tgids = set(tgids)
        for tgid in sorted(tgids - self._done.keys()):
            hooked = self._hook(tgid)
            if hooked:
                self._done[tgid] = hooked
                self._unsupported.discard(tgid)
            else:
                self._unsupported.add(tgid)
        for tgid in self._done.keys() - tgids:  # gone (or no longer a target)
            self._detach(tgid)
            del self._done[tgid]
        self._unsupported &= tgids
        self._reported &= tgids
        self.libraries.set(len(set().union(*self._done.values())))
        self.unsupported.set(len(self._unsupported))

    def _hook(self, tgid: int) -> set[tuple[str, int]]:
        try:
            libs = libssl_maps((self._proc / str(tgid) / "maps").read_text())
        except OSError:
            return set()
        hooked = set()
        for key, path in libs.items():
            if key not in self._bad and not hooked:  # one libssl per process is enough
                if self._attach_one(tgid, path):
                    hooked.add(key)
                else:
                    self._bad.add(key)
                    self._detach(tgid)
        if not hooked and tgid not in self._reported:
            self._reported.add(tgid)
            self._log.warning("capture.tls_unsupported", pid=tgid, exe=self._exe(tgid),
                              libssl=sorted(libs.values()) or None,
                              hint="no OpenSSL-compatible libssl mapped: its TLS traffic is "
                              "not captured (statically linked, or Go's crypto/tls)")
        return hooked

    def _attach_one(self, tgid: int, path: str) -> bool:
        seen_as = f"{self._proc}/{tgid}/root{path}"
        try:
            hooked = self._attach(seen_as, tgid)
        except Exception as exc:  # noqa: BLE001 -- one bad library must not stop capture
            self._log.warning("capture.tls_attach_failed", pid=tgid, library=path, error=str(exc))
            return False
        self._log.info("capture.tls_attached", pid=tgid, library=path, functions=hooked)
        return True

    def _exe(self, tgid: int) -> str:
        try:
            return os.readlink(self._proc / str(tgid) / "exe")
        except OSError:
            return "?"
