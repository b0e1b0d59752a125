"""Test-wide rules. Tests under tests/bpf need root and a working bcc: they skip without, and
fail instead of skipping when REWIND_REQUIRE_BPF=1 (CI), so CI proves the kernel part."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

REQUIRE_BPF = os.environ.get("REWIND_REQUIRE_BPF") == "1"
BPF_DIR = Path(__file__).parent / "bpf"


@functools.cache
def bpf_unavailable() -> str | None:
    """Why the probe cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "not root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not importable (run `make venv` after `make host`)"
    if not Path(f"/lib/modules/{os.uname().release}/build").exists():
        return f"no kernel headers at /lib/modules/{os.uname().release}/build (run `make host`)"
    if not (Path("/sys/kernel/tracing/events/syscalls").exists()
            or Path("/sys/kernel/debug/tracing/events/syscalls").exists()):
        return "syscall tracepoints not visible (tracefs not mounted)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BPF_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.bpf)


def pytest_runtest_setup(item):
    if item.get_closest_marker("bpf") is None:
        return
    reason = bpf_unavailable()
    if reason is None:
        return
    if REQUIRE_BPF:
        pytest.fail(f"BPF test cannot run ({reason}) and REWIND_REQUIRE_BPF=1", pytrace=False)
    pytest.skip(f"BPF test skipped: {reason}")
