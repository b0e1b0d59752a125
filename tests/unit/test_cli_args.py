"""rewind-capture's arguments: environment variables, units, and clear errors before any work."""

from __future__ import annotations

import argparse
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


@pytest.mark.parametrize("word, value", [("on", True), ("YES", True), ("1", True), ("Off", False),
                                         ("no", False), ("", False)])
def test_yes_no_flag_reads_its_variable_with_boolean(monkeypatch, word, value):
    """A store_true flag's REWIND_* variable is read by cli_args.boolean when the parser is
    built, for every command that declares its flags with cli_args.add."""
    monkeypatch.setenv("REWIND_FOLLOW", word)
    p = argparse.ArgumentParser()
    cli_args.add(p, "--follow", action="store_true", default=False, help="tail")
    assert p.parse_args([]).follow is value


def test_yes_no_variable_that_is_neither_stops_with_its_name(monkeypatch, capsys):
    """REWIND_<FLAG>=maybe exits 2 with a message naming the variable, before any work."""
    monkeypatch.setenv("REWIND_TLS", "maybe")
    with pytest.raises(SystemExit) as exc:
        parse(["--port", "80", "--stream", "s"])
    assert exc.value.code == 2 and "REWIND_TLS: not a yes/no value: 'maybe'" in capsys.readouterr().err


def test_exit_code_help_comes_from_the_enum():
    """The exit-code paragraph of --help is built from the command's enum: rewind-capture's
    shows each CaptureExit code with its text, and a code left undescribed is refused."""
    from sidecar.capture.cli import EXIT_HELP
    from sidecar.contract.exit_codes import CaptureExit

    text = " ".join(cli_args.exit_codes_help(EXIT_HELP).split())
    assert all(f"{int(code)} {EXIT_HELP[code]}" in text for code in CaptureExit)
    with pytest.raises(ValueError, match="CaptureExit: no help text for FAILURE, USAGE, PROBE"):
        cli_args.exit_codes_help({CaptureExit.OK: "done"})
