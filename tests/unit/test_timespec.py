"""--from/--to parsing, windows as id ranges, and capture order from stream order."""

from __future__ import annotations

import os
import time

import pytest

from replayer.inspect.cli import join_relative_times
from replayer.inspect.views import path_template
from replayer.source.ordering import ReadStats, capture_order
from replayer.source.timespec import TimeSpecError, format_ns, parse_duration_ns, parse_time
from replayer.source.window import Window

NOW = 1_715_680_800_000_000_000  # 2024-05-14T10:00:00Z
S = 1_000_000_000


def test_absolute_relative_and_epoch_times():
    """ISO-8601 with offsets, relative times before now, +DUR after --from, and @epoch."""
    assert parse_time("2024-05-14T10:00:00Z", now_ns=0) == NOW
    assert parse_time("2024-05-14T12:00:00+02:00", now_ns=0) == NOW
    assert parse_time("2024-05-14T10:00:00.250Z", now_ns=0) == NOW + S // 4
    assert parse_time("now", now_ns=NOW) == NOW
    assert parse_time("-15m", now_ns=NOW) == NOW - 900 * S
    assert parse_time("-2h30m", now_ns=NOW) == NOW - 9000 * S
    assert parse_time("-7d", now_ns=NOW) == NOW - 7 * 86400 * S
    assert parse_time("+15m", now_ns=NOW, base_ns=NOW - 3600 * S) == NOW - 2700 * S
    assert parse_time("+15m", now_ns=NOW) == NOW + 900 * S
    assert parse_time("@1715680800.5", now_ns=0) == NOW + S // 2
    assert parse_duration_ns("1.5h") == 5400 * S and parse_duration_ns("500ms") == S // 2
    assert format_ns(NOW + 123_000_000) == "2024-05-14T10:00:00.123Z"


def test_naive_times_are_local(monkeypatch):
    """A time without an offset is the machine's local time (TZ), as people mean it."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert parse_time("2024-05-14T12:00", now_ns=0) == NOW
        assert parse_time("2024-05-14", now_ns=0) == NOW - 12 * 3600 * S
    finally:
        os.environ.pop("TZ", None)
        time.tzset()


@pytest.mark.parametrize("bad", ["", "yesterday", "-15x", "@soon", "2024-13-40", "--5m"])
def test_bad_times_say_what_works(bad):
    """A time that cannot be read raises TimeSpecError naming the accepted forms."""
    with pytest.raises(TimeSpecError, match="ISO-8601|duration|empty"):
        parse_time(bad, now_ns=NOW)


def test_relative_times_survive_argparse():
    """`--from -15m` reaches argparse as one value, not as an unknown option."""
    assert join_relative_times(["show", "--from", "-15m", "--to", "-5m", "--jsonl"]) == \
        ["show", "--from=-15m", "--to=-5m", "--jsonl"]


def test_window_maps_to_ids_with_margin_and_filters_by_capture_time():
    """A time window scans ids [start - margin, end + margin] and keeps start <= ts_ns < end;
    an id window is inclusive; a window ending before it starts is refused."""
    w = Window(start_ns=NOW, end_ns=NOW + 60 * S)
    lo, hi = w.id_bounds(margin_ns=10 * S)
    assert lo == ((NOW - 10 * S) // 1_000_000, 0) and hi[0] == (NOW + 70 * S) // 1_000_000
    assert w.contains((1, 0), NOW) and not w.contains((1, 0), NOW + 60 * S)
    ids = Window(start_id=(5, 0), end_id=(7, 3))
    assert ids.contains((7, 3), 0) and not ids.contains((7, 4), 0)
    with pytest.raises(ValueError, match="ends"):
        Window(start_ns=NOW, end_ns=NOW - 1)


def test_capture_order_sorts_within_the_reorder_window_and_counts_late_records():
    """Records arriving (by stream id) out of capture order come out sorted by ts_ns when the
    disorder is within the reorder window, and late (counted) when it is beyond."""
    ms = 1_000_000
    # (stream id ms, capture ms): the second sidecar publishes 300 ms late
    arrivals = [(1000, 1000), (1010, 1010), (1310, 1005), (1320, 1320), (1330, 1012), (3000, 3000),
                (5000, 400)]
    items = [((sid, 0), ts * ms, None, None) for sid, ts in arrivals]
    stats = ReadStats()
    out = [item[1] // ms for item in capture_order(iter(items), 500 * ms, stats)]
    assert out == [1000, 1005, 1010, 1012, 1320, 400, 3000]
    assert stats.late == 1 and stats.held_max >= 2


def test_path_templates_fold_ids():
    """Numeric, UUID and long hex path segments become {id}; the query string goes."""
    assert path_template("/orders/123/items?x=1") == "/orders/{id}/items"
    assert path_template("/u/3f2b8c4e-1d2a-4b6c-9e8f-0a1b2c3d4e5f") == "/u/{id}"
    assert path_template("/v2/orders") == "/v2/orders"
