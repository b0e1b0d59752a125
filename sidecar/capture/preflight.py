"""What the kernel lets this process do before the probe is compiled, and, when it cannot load,
what exactly is missing: a capability, a seccomp filter, kernel lockdown, kernel headers or
tracefs. Read from /proc, /sys and two harmless system calls (creating a one-entry BPF map and
a disabled dummy perf event); the roots are passed in so tests can use fixture folders.

Also where bcc finds kernel headers: the host's (/lib/modules/RELEASE/build), else the ones an
image ships (REWIND_KERNEL_HEADERS, handed to bcc as BCC_KERNEL_SOURCE)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# capability bits (linux/capability.h)
CAPS = {"SYS_PTRACE": 19, "SYS_ADMIN": 21, "PERFMON": 38, "BPF": 39}
_SYSCALLS = {"x86_64": {"bpf": 321, "perf_event_open": 298},
             "aarch64": {"bpf": 280, "perf_event_open": 241}}.get(platform.machine(), {})
_SECCOMP = {0: "none", 1: "strict", 2: "filter"}


@dataclass
class Environment:
    """What was found; ``bpf_errno``/``perf_errno``: 0 when the test call worked."""

    caps: set[str]
    seccomp: int  # Seccomp: of /proc/self/status (0 none, 1 strict, 2 filter)
    lockdown: str  # /sys/kernel/security/lockdown ("" when absent), e.g. "none [integrity] ..."
    unprivileged_bpf_disabled: str
    bpf_errno: int
    perf_errno: int
    headers: tuple[str, str] | None  # (path, where from) or None
    tracefs: bool

    @property
    def lockdown_mode(self) -> str:
        """The selected lockdown mode (the bracketed word), "none" when absent."""
        start, end = self.lockdown.find("["), self.lockdown.find("]")
        return self.lockdown[start + 1:end] if 0 <= start < end else "none"

    def refused(self) -> str | None:
        """Why bpf()/perf_event_open() are refused, or None when both worked."""
        calls = [n for n, e in (("bpf()", self.bpf_errno), ("perf_event_open()", self.perf_errno))
                 if e in (errno.EPERM, errno.EACCES)]
        if not calls:
            return None
        what = " and ".join(calls) + " " + ("are" if len(calls) > 1 else "is") + " refused (EPERM)"
        have = sorted(self.caps & set(CAPS))
        if "SYS_ADMIN" not in self.caps and not {"BPF", "PERFMON"} <= self.caps:
            missing = sorted({"BPF", "PERFMON"} - self.caps)
            return (f"{what}: the process lacks CAP_{' and CAP_'.join(missing)} (effective: "
                    f"{', '.join(have) or 'none of BPF, PERFMON, SYS_ADMIN, SYS_PTRACE'}); add "
                    "capabilities BPF, PERFMON and SYS_PTRACE (kernels before 5.8: SYS_ADMIN), e.g. "
                    "the chart's sidecar.capabilities, and run as root (UID 0). "
                    f"kernel.unprivileged_bpf_disabled={self.unprivileged_bpf_disabled or '?'}")
        if self.seccomp == 2:
            return (f"{what} by a seccomp filter (Seccomp: 2 in /proc/self/status) although the "
                    "process has CAP_" + ", CAP_".join(have) + ": container runtimes' default "
                    "profiles (podman's, older Docker/containerd ones) allow these calls only with "
                    "CAP_SYS_ADMIN. Run the sidecar with seccompProfile type Unconfined (the "
                    "chart's sidecar.seccompProfile, its default), or a Localhost profile that "
                    "allows bpf and perf_event_open")
        if self.lockdown_mode == "confidentiality":
            return (f"{what}: kernel lockdown is in confidentiality mode "
                    f"({self.lockdown.strip()}); BPF tracing needs lockdown none or integrity")
        return (f"{what} although the process has CAP_{', CAP_'.join(have)}, no seccomp filter "
                f"and lockdown {self.lockdown_mode}: a Linux security module (SELinux, AppArmor) "
                "policy may deny it")

    def explain(self, error: str) -> str:
        """The message for a probe that failed to load with ``error`` (bcc's own text)."""
        refused = self.refused()
        if refused:
            return refused
        if self.headers is None:
            return (f"no kernel headers for bcc ({error}): none at /lib/modules/"
                    f"{os.uname().release}/build, no REWIND_KERNEL_HEADERS or BCC_KERNEL_SOURCE "
                    "folder, no /sys/kernel/kheaders.tar.xz. The rewind/sidecar image ships "
                    "headers; elsewhere install linux-headers (make host)")
        if not self.tracefs:
            return (f"syscall tracepoints are not visible ({error}): mount tracefs at "
                    "/sys/kernel/tracing (the chart mounts the host's)")
        return (f"could not load the capture probe: {error} (kernel headers: "
                f"{self.headers[0]} from {self.headers[1]})")


def kernel_headers(env: dict[str, str] | None = None, root: str = "/") -> tuple[str, str] | None:
    """Where bcc will find kernel headers: (path, origin), origin being "BCC_KERNEL_SOURCE",
    "host", "image" (REWIND_KERNEL_HEADERS) or "kheaders" (the kernel's own archive)."""
    env = os.environ if env is None else env
    r = Path(root)
    if env.get("BCC_KERNEL_SOURCE"):
        path = env["BCC_KERNEL_SOURCE"]
        return (path, "BCC_KERNEL_SOURCE") if (r / path.lstrip("/")).is_dir() else None
    host = f"/lib/modules/{os.uname().release}/build"
    if (r / host.lstrip("/")).is_dir():
        return host, "host"
    image = env.get("REWIND_KERNEL_HEADERS", "")
    if image and (r / image.lstrip("/") / "include").is_dir():
        return image, "image"
    if (r / "sys/kernel/kheaders.tar.xz").exists():
        return "/sys/kernel/kheaders.tar.xz", "kheaders"
    return None


def use_headers(headers: tuple[str, str] | None, env: dict[str, str] | None = None) -> None:
    """Point bcc at the image's headers when those are the ones to use (bcc reads
    BCC_KERNEL_SOURCE when it compiles)."""
    env = os.environ if env is None else env
    if headers is not None and headers[1] == "image":
        env["BCC_KERNEL_SOURCE"] = headers[0]


def examine(proc: str = "/proc", sys: str = "/sys", root: str = "/") -> Environment:
    """Look at this process and kernel (two test system calls included)."""
    status = _read(f"{proc}/self/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    eff = int(fields.get("CapEff", "0").strip() or "0", 16)
    return Environment(
        caps={name for name, bit in CAPS.items() if eff >> bit & 1},
        seccomp=int(fields.get("Seccomp", "0").strip() or "0"),
        lockdown=_read(f"{sys}/kernel/security/lockdown").strip(),
        unprivileged_bpf_disabled=_read(f"{proc}/sys/kernel/unprivileged_bpf_disabled").strip(),
        bpf_errno=_try_bpf(),
        perf_errno=_try_perf_event(),
        headers=kernel_headers(root=root),
        tracefs=any(Path(sys, p, "events/syscalls").is_dir()
                    for p in ("kernel/tracing", "kernel/debug/tracing")),
    )


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(name: str, *args) -> int:
    """0 when the call worked (its fd is closed), else its errno."""
    nr = _SYSCALLS.get(name)
    if nr is None:
        return 0  # unknown architecture: let the real load speak
    fd = _libc.syscall(ctypes.c_long(nr), *args)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


def _try_bpf() -> int:
    """bpf(BPF_MAP_CREATE) of a one-entry array map."""
    attr = (ctypes.c_uint32 * 30)()
    attr[0:4] = [2, 4, 4, 1]  # BPF_MAP_TYPE_ARRAY, key size, value size, max entries
    return _syscall("bpf", ctypes.c_int(0), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))


def _try_perf_event() -> int:
    """perf_event_open of a disabled dummy software event on CPU 0 for every process (what a
    tracepoint attachment needs too: a system-wide event)."""
    attr = (ctypes.c_uint64 * 16)()  # struct perf_event_attr, PERF_ATTR_SIZE_VER0 = 64 bytes
    attr[0] = 1 | (64 << 32)  # type PERF_TYPE_SOFTWARE, size
    attr[1] = 9  # config PERF_COUNT_SW_DUMMY
    attr[5] = 1  # flags: disabled
    return _syscall("perf_event_open", ctypes.byref(attr), ctypes.c_int(-1), ctypes.c_int(0),
                    ctypes.c_int(-1), ctypes.c_ulong(8))  # pid -1, cpu 0, no group, CLOEXEC
