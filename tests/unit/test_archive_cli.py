"""rewind-archive's and rewind-inspect's arguments: environment variables, units, and clear
errors before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sidecar.archive.cli import parse


def test_flags_and_environment(monkeypatch):
    """Every flag also reads REWIND_<FLAG> (booleans as 1/true/yes), with units for sizes and
    durations; a flag on the command line wins."""
    monkeypatch.setenv("REWIND_STREAM", "orders")
    monkeypatch.setenv("REWIND_OUT", "/archive")
    monkeypatch.setenv("REWIND_SEGMENT_BYTES", "8MiB")
    monkeypatch.setenv("REWIND_TRIM_ARCHIVED", "true")
    monkeypatch.setenv("REWIND_KEEP_DAYS", "30")
    args = parse([])
    assert (args.stream, args.out, args.segment_bytes) == ("orders", "/archive", 8 << 20)
    assert args.trim_archived is True and args.keep_days == 30 and args.drain is False
    assert parse(["--segment-seconds", "5m"]).segment_seconds == 300
    monkeypatch.setenv("REWIND_TRIM_ARCHIVED", "0")
    assert parse([]).trim_archived is False


@pytest.mark.parametrize("argv, message", [
    (["--out", "/a"], "--stream"),
    (["--stream", "s"], "--out"),
    (["--stream", "bad name", "--out", "/a"], "--stream"),
    (["--stream", "s", "--out", "/a", "--consumer", "-x"], "--consumer"),
    (["--stream", "s", "--out", "/a", "--redis", "http://x"], "--redis"),
    (["--stream", "s", "--out", "/a", "--segment-bytes", "10"], "at least 1KiB"),
    (["--stream", "s", "--out", "/a", "--compression-level", "40"], "1..22"),
    (["--stream", "s", "--out", "/a", "--keep-days", "0"], "--keep-days"),
    (["--stream", "s", "--out", "/a", "--segment-seconds", "10m"], "--claim-idle"),
])
def test_bad_arguments_fail_before_any_work(argv, message, capsys):
    """Bad values exit 2 with a message naming the flag and what would work."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("module", ["sidecar.archive.cli", "replayer.inspect.cli"])
def test_help_has_examples_and_exit_codes(module):
    """--help of both commands ends with examples and the exit codes."""
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "examples:" in out and "exit codes:" in out
