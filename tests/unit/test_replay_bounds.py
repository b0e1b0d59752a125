"""--from/--to of rewind-replay: times and stream ids through replayer.source.timespec."""

from __future__ import annotations

import pytest

from replayer.replay.options import parse
from replayer.replay.parser import bound
from replayer.source.timespec import TimeSpecError, parse_bound


def test_stream_ids_times_and_ns():
    """A stream id becomes an id bound, a date is not taken for one, digits stay ns."""
    assert parse_bound("1732312345678-0") == (None, (1732312345678, 0))
    assert parse_bound("0-12") == (None, (0, 12))
    assert parse_bound("2024-05-14T10:00:00Z") == (1_715_680_800_000_000_000, None)
    assert bound("1715680800000000000") == (1_715_680_800_000_000_000, None)
    assert bound("+10s", base_ns=5) == (10_000_000_005, None)
    with pytest.raises(TimeSpecError):
        parse_bound("12-ab")


def test_cli_checks_the_order_of_id_bounds(capsys):
    """--from after --to is refused for ids as for times (exit 2, one line)."""
    opts = parse(["--source", "x", "--target", "http://t", "--from", "1732312345678-5",
                  "--to", "1732312345679-0"])
    assert (opts.window.start_id, opts.window.end_id) == ((1732312345678, 5), (1732312345679, 0))
    with pytest.raises(SystemExit) as e:
        parse(["--source", "x", "--target", "http://t", "--from", "1732312345679-0",
               "--to", "1732312345678-5"])
    assert e.value.code == 2 and "--from is after --to" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--source", "x.jsonl", "--follow"], "--follow tails a Redis stream"),
    (["--source", "redis://r", "--follow", "--mode", "max"], "--follow sends each request"),
    (["--source", "x.jsonl", "--baseline", "ftp://b"], "--baseline must be a base URL"),
    (["--source", "x.jsonl", "--baseline", "http://b", "--external-workers", "2"],
     "does not go with"),
    (["--source", "x.jsonl", "--external-workers", "0"], "--external-workers must be"),
])
def test_new_flags_refuse_what_does_not_go(capsys, argv, message):
    """--follow, --baseline and --external-workers refuse combinations they cannot serve."""
    with pytest.raises(SystemExit) as e:
        parse([*argv, "--target", "http://t"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_external_workers_defaults():
    """--external-workers listens on 0.0.0.0:5557 and waits 10 minutes unless told otherwise."""
    opts = parse(["--source", "x", "--target", "http://t", "--external-workers", "3"])
    assert (opts.workers, opts.bind_host, opts.bind_port, opts.connect_timeout) \
        == (3, "0.0.0.0", 5557, 600.0)


def test_relative_times_work_without_an_equals_sign():
    """`--from -15m --to -5m` (as people type it, and as Jenkins passes it) parses like `--from=-15m`."""
    import time
    window = parse(["--source", "x", "--target", "http://t", "--from", "-15m", "--to", "-5m"]).window
    now = time.time_ns()
    assert abs(now - 15 * 60 * 10**9 - window.start_ns) < 60 * 10**9
    assert abs(window.end_ns - window.start_ns - 10 * 60 * 10**9) < 10**9
