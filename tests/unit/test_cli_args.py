"""rewind-capture's arguments: environment variables, units, and clear errors before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sidecar.common import cli_args
from sidecar.capture.cli import parse


def test_sizes_and_durations():
    """Sizes take binary suffixes and durations s/m/h/ms."""
    assert cli_args.size("1MiB") == 1 << 20 and cli_args.size("64k") == 65536
    assert cli_args.size("10") == 10
    assert cli_args.duration("5m") == 300 and cli_args.duration("250ms") == 0.25
    for bad in ("ten", "1.5MiB", "-1"):
        with pytest.raises(Exception, match="not a size"):
            cli_args.size(bad)


def test_flags_read_from_environment(monkeypatch):
    """Every flag also reads REWIND_<FLAG>; an explicit flag wins over the environment."""
    monkeypatch.setenv("REWIND_PORT", "8080")
    monkeypatch.setenv("REWIND_STREAM", "orders")
    monkeypatch.setenv("REWIND_MAX_BODY", "2MiB")
    args = parse([])
    assert (args.port, args.stream, args.max_body, args.tls) == ((8080,), "orders", 2 << 20, False)
    assert parse(["--max-body", "10"]).max_body == 10


def test_several_ports_and_tls_from_environment(monkeypatch):
    """--port takes a comma-separated list; REWIND_TLS=true turns --tls on."""
    monkeypatch.setenv("REWIND_TLS", "true")
    args = parse(["--port", "8080,8443", "--stream", "s"])
    assert (args.port, args.tls) == ((8080, 8443), True)


@pytest.mark.parametrize("argv, message", [
    (["--stream", "s"], "--port"),
    (["--port", "70000", "--stream", "s"], "port must be 0..65535"),
    (["--port", "80", "--stream", "bad{name}"], "--stream"),
    (["--port", "80", "--stream", "s", "--max-body", "lots"], "not a size"),
    (["--port", "80", "--stream", "s", "--ringbuf-size", "3MiB"], "power of two"),
    (["--port", "80", "--stream", "s", "--pid", "999999999"], "no such process"),
    (["--port", "80,0", "--stream", "s"], "ports must be 1..65535"),
])
def test_bad_arguments_fail_with_a_message(argv, message):
    """Each bad argument exits 2 before any work, with a message saying what to change."""
    proc = subprocess.run([sys.executable, "-m", "sidecar.capture.cli", *argv],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_help_lists_flags_env_and_examples():
    """--help is complete: every flag with its environment variable, and examples."""
    out = subprocess.run([sys.executable, "-m", "sidecar.capture.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--port", "--redis", "--stream", "--pid", "--cgroup", "--max-body",
                 "--duration", "--metrics-port", "REWIND_PORT", "examples:", "exit codes"):
        assert flag in out
