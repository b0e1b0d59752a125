"""Why the probe cannot load, said precisely: capabilities, seccomp, lockdown, kernel headers,
tracefs (sidecar/capture/preflight.py), from what /proc and /sys show."""

from __future__ import annotations

import errno
import os

import pytest

from sidecar.capture import preflight
from sidecar.capture.preflight import Environment, kernel_headers

CAPS = {"BPF", "PERFMON", "SYS_PTRACE"}


def env(**kw) -> Environment:
    base = dict(caps=set(CAPS), seccomp=0, lockdown="", unprivileged_bpf_disabled="2",
                bpf_errno=0, perf_errno=0, headers=("/lib/modules/x/build", "host"), tracefs=True)
    base.update(kw)
    return Environment(**base)


def test_seccomp_filter_is_named_when_capabilities_are_there():
    """bpf() refused with CAP_BPF and CAP_PERFMON under a seccomp filter: the message names
    seccomp and the chart value, never kernel headers."""
    msg = env(seccomp=2, bpf_errno=errno.EPERM, perf_errno=errno.EPERM).explain("Failed to compile")
    assert "seccomp" in msg and "sidecar.seccompProfile" in msg and "Unconfined" in msg
    assert "bpf() and perf_event_open() are refused" in msg
    assert "header" not in msg


def test_missing_capability_is_named():
    """Without CAP_PERFMON (and no CAP_SYS_ADMIN) the message names the missing capability."""
    msg = env(caps={"BPF"}, seccomp=2, perf_errno=errno.EPERM).refused()
    assert "lacks CAP_PERFMON" in msg and "seccomp" not in msg
    assert env(caps={"SYS_ADMIN"}, seccomp=2, perf_errno=errno.EPERM).refused().count("seccomp") >= 1


def test_lockdown_and_lsm():
    """With capabilities and no seccomp filter, confidentiality lockdown is named; otherwise an
    LSM policy is the suspect."""
    locked = env(bpf_errno=errno.EPERM, lockdown="none integrity [confidentiality]")
    assert "confidentiality" in locked.refused()
    assert "SELinux" in env(bpf_errno=errno.EPERM, lockdown="[none] integrity").refused()


def test_headers_blamed_only_when_missing():
    """A compile failure blames headers only when no headers are found; tracefs likewise."""
    assert env().refused() is None
    assert "no kernel headers" in env(headers=None).explain("Failed to compile")
    assert "tracefs" in env(tracefs=False).explain("Failed to compile")
    generic = env().explain("Failed to compile BPF module")
    assert "Failed to compile BPF module" in generic and "from host" in generic


def test_kernel_headers_host_first_then_image(tmp_path):
    """The host's /lib/modules/RELEASE/build wins; else REWIND_KERNEL_HEADERS (the image's);
    BCC_KERNEL_SOURCE set by hand overrides both; nothing found is None."""
    image = tmp_path / "opt/rewind/kernel-headers"
    (image / "include").mkdir(parents=True)
    e = {"REWIND_KERNEL_HEADERS": "/opt/rewind/kernel-headers"}
    assert kernel_headers(e, root=str(tmp_path)) == ("/opt/rewind/kernel-headers", "image")
    (tmp_path / f"lib/modules/{os.uname().release}/build").mkdir(parents=True)
    assert kernel_headers(e, root=str(tmp_path))[1] == "host"
    by_hand = kernel_headers({**e, "BCC_KERNEL_SOURCE": "/opt"}, root=str(tmp_path))
    assert by_hand == ("/opt", "BCC_KERNEL_SOURCE")
    assert kernel_headers({}, root=str(tmp_path / "empty")) is None


def test_use_headers_points_bcc_at_the_image_headers_only():
    """Only the image's headers are handed to bcc through BCC_KERNEL_SOURCE."""
    e: dict[str, str] = {}
    preflight.use_headers(("/lib/modules/x/build", "host"), e)
    assert e == {}
    preflight.use_headers(("/opt/rewind/kernel-headers", "image"), e)
    assert e == {"BCC_KERNEL_SOURCE": "/opt/rewind/kernel-headers"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the test calls need root here")
def test_examine_this_machine():
    """As root on this machine both test calls work and the capabilities are all there."""
    found = preflight.examine()
    assert (found.bpf_errno, found.perf_errno) == (0, 0)
    assert {"BPF", "PERFMON", "SYS_ADMIN"} <= found.caps and found.refused() is None
