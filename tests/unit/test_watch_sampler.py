"""The target-health sampler (replayer.watch) driven by a hand-moved clock over a fixture /proc:
samples land on the interval grid, the growth per hour is the least-squares slope, a failed
read is counted and logged, and a process that exits is reported once and not asked again."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from replayer.watch import growth_per_hour
from replayer.watch.procfs import PidSource
from replayer.watch.sampler import Sampler

MIB = 1024 * 1024


class HandClock:
    """now()/sleep(): sleeping moves time; ``on_sleep(t)`` runs after each move."""

    def __init__(self, on_sleep=None) -> None:
        self.t = 100.0
        self.on_sleep = on_sleep or (lambda t: None)
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s
        self.on_sleep(self.t)


def write_status(proc, pid: int, rss_kib: int | None, name: str = "api") -> None:
    d = proc / str(pid)
    d.mkdir(exist_ok=True)
    (d / "comm").write_text(name + "\n")
    lines = ["Name:\tapi", "State:\tS (sleeping)"]
    if rss_kib is not None:
        lines.append(f"VmRSS:\t{rss_kib:>8} kB")
    (d / "status").write_text("\n".join(lines) + "\n")


def test_growth_is_the_least_squares_slope_per_hour():
    """A line of 1 MiB per second is 3600 MiB per hour; one outlier at the end moves the slope
    less than half as much as (end - start) / duration; fewer than two times: None."""
    t = [float(i) for i in range(11)]
    assert growth_per_hour(t, [i * MIB for i in t]) == pytest.approx(3600 * MIB)
    spiky = [0.0] * 10 + [100 * MIB]
    assert growth_per_hour(t, spiky) < 0.5 * (100 * MIB / 10 * 3600)
    assert growth_per_hour([1.0], [5.0]) is None
    assert growth_per_hour([1.0, 1.0], [5.0, 6.0]) is None


def test_samples_on_the_grid_and_growth_of_a_leaking_pid(tmp_path):
    """RSS rising 512 KiB per simulated second, sampled every 2 s for 20 s: samples at 0, 2, ...
    20 (plus the last one at the stop), growth 1800 MiB per hour, start/end/peak right."""
    write_status(tmp_path, 42, 10_000)
    start = 100.0

    def grow(t):
        write_status(tmp_path, 42, 10_000 + int((t - start) * 512))

    clock = HandClock(grow)
    s = Sampler([PidSource(42, str(tmp_path))], clock=clock, interval=2.0)
    s.run(lambda: clock.t - start >= 20.0)
    series = s.to_json()["series"][0]
    assert series["label"] == "pid 42 (api) rss" and series["unit"] == "bytes"
    assert series["t"][:11] == [float(x) for x in range(0, 21, 2)]
    assert series["growth_per_hour"] == pytest.approx(512 * 1024 * 3600, rel=1e-6)
    assert series["start"] == 10_000 * 1024 and series["peak"] == series["end"]
    assert max(clock.slept) <= 0.25  # the stop is seen within a poll, not after an interval


def test_a_slow_tick_skips_grid_points_instead_of_bunching(tmp_path):
    """A sample that takes 5 s (interval 2): one late sample at once, then the grid again (6, 8),
    not the missed points 2 and 4 bunched together."""
    write_status(tmp_path, 7, 1000)
    clock = HandClock()

    class Slow(PidSource):
        def sample(self):
            if clock.t == 100.0:
                clock.t += 5.0  # the first read is slow
            return super().sample()

    s = Sampler([Slow(7, str(tmp_path))], clock=clock, interval=2.0)
    s.run(lambda: clock.t >= 100.0 + 9.0)
    assert s.to_json()["series"][0]["t"][:4] == [0.0, 5.0, 6.0, 8.0]


def test_an_exited_pid_is_reported_once_and_no_longer_asked(tmp_path):
    """The pid's folder vanishes after 3 s: samples stop there, one watch.ended line, the source
    says when and why; a zombie (status without VmRSS) counts as exited too."""
    write_status(tmp_path, 5, 2000, name="svc")
    write_status(tmp_path, 6, 2000, name="zomb")

    def vanish(t):
        if t >= 103.0 and (tmp_path / "5").exists():
            for f in (tmp_path / "5").iterdir():
                f.unlink()
            (tmp_path / "5").rmdir()
            write_status(tmp_path, 6, None, name="zomb")

    clock = HandClock(vanish)
    s = Sampler([PidSource(5, str(tmp_path)), PidSource(6, str(tmp_path))], clock=clock,
                interval=1.0, log=lambda event, **kw: logs.append((event, kw)))
    logs: list = []
    s.run(lambda: clock.t >= 110.0)
    out = s.to_json()
    assert [src["ended_at_s"] for src in out["sources"]] == [3.0, 3.0]
    assert out["sources"][0]["ended"] == "pid 5 (svc) exited"
    assert "zombie" in out["sources"][1]["ended"]
    assert [e for e, _ in logs] == ["watch.ended", "watch.ended"]
    assert out["series"][0]["t"] == [0.0, 1.0, 2.0]


def test_a_failed_read_is_counted_and_logged_and_sampling_goes_on(tmp_path):
    """An unreadable status file (EACCES-like: a directory in its place) is a failure, counted
    with its message; the series resumes when the file is readable again."""
    write_status(tmp_path, 9, 3000)
    status = tmp_path / "9" / "status"

    def flip(t):
        if 101.5 <= t < 103.5 and status.is_file():
            status.unlink()
            status.mkdir()
        elif t >= 103.5 and status.is_dir():
            status.rmdir()
            write_status(tmp_path, 9, 3000)

    clock = HandClock(flip)
    with capture_logs() as logs:
        import structlog
        s = Sampler([PidSource(9, str(tmp_path))], clock=clock, interval=1.0,
                    log=structlog.get_logger().warning)
        s.run(lambda: clock.t >= 105.0)
    out = s.to_json()
    src = out["sources"][0]
    assert src["failures"] == 2 and "status" in src["last_error"]
    assert out["series"][0]["t"] == [0.0, 1.0, 4.0, 5.0]
    assert [entry["event"] for entry in logs] == ["watch.failed", "watch.failed"]
