"""Target health in the verdict and the report (replayer.judge.health): a growing series fails
max_memory_growth_mib_per_hour naming the series, a flat one passes, one that could not be
sampled is UNKNOWN (and does not pass), and the HTML page gets a Target health section."""

from __future__ import annotations

import pytest

from replayer.judge.html import render_html
from replayer.judge.verdict import ThresholdsError, evaluate, parse_thresholds
from replayer.watch.series import Series

MIB = 1024 * 1024


def health(*series: Series, failed_query: bool = False) -> dict:
    sources = [{"label": s.source, "kind": "pid", "samples": len(s.v), "failures": 0, "empty": 0,
                "last_error": None, "ended_at_s": None, "ended": None, "series": [s.label]}
               for s in series]
    if failed_query:
        sources.append({"label": "process_resident_memory_bytes", "kind": "prometheus",
                        "samples": 0, "failures": 4, "empty": 0,
                        "last_error": "HTTP 400: parse error", "ended_at_s": None,
                        "ended": None, "series": []})
    return {"interval_s": 1.0, "sources": sources, "series": [s.to_json() for s in series],
            "error": None, "load_starts_at_s": 1.5}


def series(label: str, mib_per_s: float, n: int = 11) -> Series:
    s = Series(label, label.split(" (")[0], "bytes")
    for i in range(n):
        s.add(float(i), 100 * MIB + i * mib_per_s * MIB)
    return s


def summary_with(h: dict) -> dict:
    return {"endpoints": {}, "totals": {}, "latency_ms": {}, "health": h}


def test_the_health_limit_is_a_known_threshold():
    """max_memory_growth_mib_per_hour is accepted; a misspelling is refused naming it."""
    assert parse_thresholds('{"max_memory_growth_mib_per_hour": 50}')
    with pytest.raises(ThresholdsError, match="max_memory_growth_mib_per_hour"):
        parse_thresholds('{"max_memory_growth_per_hour": 50}')


def test_a_leak_fails_naming_the_series_and_a_steady_one_passes():
    """1 MiB/s is 3600 MiB/h > 100: FAIL with the series' label and its start -> end; flat: PASS."""
    checks = evaluate({"max_memory_growth_mib_per_hour": 100},
                      summary_with(health(series("pid 7 (api) rss", 1.0),
                                          series("pid 8 (db) rss", 0.0))))
    lines = [c.line() for c in checks]
    assert lines[0].startswith("FAIL memory_growth_mib_per_hour [pid 7 (api) rss] = 3600.0 "
                               "(limit <= 100): 100.0 -> 110.0 MiB over 10 s")
    assert lines[1].startswith("PASS memory_growth_mib_per_hour [pid 8 (db) rss] = 0.0 ")
    assert [c.ok for c in checks] == [False, True]


def test_what_cannot_be_sampled_is_unknown_and_does_not_pass():
    """A query that always failed and a series with one sample: UNKNOWN, with the reason."""
    checks = evaluate({"max_memory_growth_mib_per_hour": 100},
                      summary_with(health(series("pid 9 (api) rss", 0.0, n=1), failed_query=True)))
    lines = [c.line() for c in checks]
    assert lines[0] == ("UNKNOWN memory_growth_mib_per_hour [pid 9 (api) rss] = n/a "
                        "(limit <= 100): 1 sample(s): too few for a slope")
    assert lines[1].startswith("UNKNOWN memory_growth_mib_per_hour [process_resident_memory_bytes]"
                               " = n/a (limit <= 100): no sample in 4 tries")
    assert not any(c.ok for c in checks)


def test_the_report_shows_target_health():
    """render_html draws the section with the table's growth per hour."""
    s = {"run": {"target": "t", "source": "s", "mode": "max", "workers": 1, "follow": False},
         "plan": {"steps": 1, "connections": 1, "skipped": {}},
         "totals": {"sent": 1, "rps": 1, "errors": 0, "error_rate": 0.0,
                    "status_mismatch_rate": 0.0, "body_mismatch_rate": 0.0, "bodies_compared": 0},
         "latency_ms": dict.fromkeys(("p50", "p90", "p95", "p99", "max"), 1.0), "lag_ms": None,
         "series": {"t": [0, 1], "bucket_s": 1, "rps": [1, 1], "errors_per_s": [0, 0]},
         "endpoints": {}, "errors": {}, "status_codes": {}, "recorded_status_codes": {},
         "health": health(series("pid 7 (api) rss", 1.0))}
    page = render_html(s)
    assert "<h2>Target health</h2>" in page and "+3,600.0 MiB/h" in page
    del s["health"]
    assert "Target health" not in render_html(s)


@pytest.mark.parametrize("argv,message", [
    (["--watch", "up"], "--watch QUERY needs --watch-prometheus URL"),
    (["--watch-prometheus", "http://p:9090"], "--watch-prometheus needs at least one --watch"),
    (["--watch-prometheus", "p:9090", "--watch", "up"], "expected http(s)://host:port"),
    (["--watch-pid", "999999999"], "--watch-pid 999999999: no such process"),
    (["--thresholds", "{T}"], "max_memory_growth_mib_per_hour needs something watched"),
])
def test_watch_flags_are_checked_before_any_work(tmp_path, capsys, argv, message):
    """Each bad combination of the --watch* flags exits 2 with a line saying what to change."""
    from replayer.replay.options import parse

    t = tmp_path / "t.json"
    t.write_text('{"max_memory_growth_mib_per_hour": 10}')
    with pytest.raises(SystemExit) as exc:
        parse(["--source", "x.jsonl", "--target", "http://t:1",
               *[str(t) if a == "{T}" else a for a in argv]])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
