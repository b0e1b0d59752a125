"""The target's health in the report: ``health_section`` (HTML) and ``health_checks`` (verdict).

``summary["health"]`` is what ``replayer.watch.Watcher.stop()`` returned: every watched series
(seconds since watching started, values; ``load_starts_at_s`` is when the run's first request was
due on that clock) with its start, end, peak and growth per hour, and
how each source fared. The section draws the load (requests/s) above the watched series on one
time axis and tabulates each series; ``max_memory_growth_mib_per_hour`` in the thresholds fails
the verdict for any series growing faster (every watched series is read as bytes: watch memory
with it). A series that cannot be judged (a query that always failed, fewer than two samples)
is an UNKNOWN check, which does not pass.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["HEALTH_LIMITS", "HealthCheck", "health_checks", "health_section"]

GROWTH = "memory_growth_mib_per_hour"
HEALTH_LIMITS = ("max_" + GROWTH,)
MIB = 1024.0 * 1024.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A threshold check on one watched series; read like ``replayer.judge.verdict.Check``."""

    metric: str
    bound: str
    limit: float
    scope: str  # the series' label (or the source's, when it gave no series)
    value: float | None  # MiB per hour; None: unknown
    ok: bool
    detail: str = ""

    def line(self) -> str:
        state = "PASS" if self.ok else ("UNKNOWN" if self.value is None else "FAIL")
        shown = "n/a" if self.value is None else f"{self.value:.1f}"
        return (f"{state} {self.metric} [{self.scope}] = {shown} (limit <= {self.limit:g})"
                + (f": {self.detail}" if self.detail else ""))


def health_checks(thresholds: dict, summary: dict) -> list[HealthCheck]:
    """One check per watched series (and per source that gave none) when a health limit is set."""
    limit = thresholds.get("max_" + GROWTH)
    if limit is None:
        return []
    health = summary.get("health")
    if not health:
        return [HealthCheck(GROWTH, "max", limit, "watched", None, False,
                            "nothing was watched (--watch-pid or --watch)")]
    series = {s["label"]: s for s in health["series"]}
    checks = []
    for src in health["sources"]:
        if not src["series"]:
            checks.append(HealthCheck(GROWTH, "max", limit, src["label"], None, False,
                                      _why_empty(src)))
        for label in src["series"]:
            s = series[label]
            g = s["growth_per_hour"]
            if g is None:
                checks.append(HealthCheck(GROWTH, "max", limit, label, None, False,
                                          f"{s['samples']} sample(s): too few for a slope"))
                continue
            value = g / MIB
            checks.append(HealthCheck(
                GROWTH, "max", limit, label, value, value <= limit,
                f"{_mib(s['start'])} -> {_mib(s['end'])} MiB over {s['span_s']:g} s, "
                f"peak {_mib(s['peak'])} MiB"))
    return checks


def _why_empty(src: dict) -> str:
    if src["failures"]:
        return (f"no sample in {src['failures']} tries ({src['failures']} failed, last: "
                f"{src['last_error']})")
    if src["ended"]:
        return src["ended"]
    return f"the query answered no series ({src['empty']} times)"


def _mib(v: float | None) -> str:
    return "n/a" if v is None else f"{v / MIB:.1f}"


def _shown(v: float | None, unit: str | None, per_hour: bool = False) -> str:
    if v is None:
        return "n/a"
    suffix = "/h" if per_hour else ""
    sign = "+" if per_hour and v > 0 else ""
    if unit == "bytes":
        return f"{sign}{v / MIB:,.1f} MiB{suffix}"
    return f"{sign}{v:,.4g}{suffix}"


def _plot(summary: dict, health: dict, png) -> str:
    """The load (requests/s) above the watched series, seconds on both x axes."""
    fig, (load, watched) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True,
                                        gridspec_kw={"height_ratios": [1, 1.4]})
    shift = health.get("load_starts_at_s") or 0.0  # sample times -> seconds since the start
    series = summary.get("series") or {}
    if series.get("t"):
        load.plot(series["t"], series.get("rps") or [], lw=1.2, label="sent / s")
        if any(series.get("errors_per_s") or []):
            load.plot(series["t"], series["errors_per_s"], lw=1.2, color="tab:red",
                      label="errors / s")
        load.legend(fontsize=8, loc="upper right")
    load.set_title("Load")
    load.set_ylabel("requests / s")
    load.grid(alpha=0.3)
    for s in health["series"]:
        ys = [v / MIB for v in s["v"]] if s["unit"] == "bytes" else s["v"]
        label = f"{s['label']} ({_shown(s['growth_per_hour'], s['unit'], per_hour=True)})"
        watched.plot([t - shift for t in s["t"]], ys, ".-", lw=1.2, ms=3, label=label[:90])
    for src in health["sources"]:
        if src["ended_at_s"] is not None:
            watched.axvline(src["ended_at_s"] - shift, color="grey", ls=":", lw=1)
    watched.set_title("Watched series (growth per hour in the legend)")
    watched.set_ylabel("MiB (bytes series) / value")
    watched.set_xlabel(f"seconds since the start of the run (sampled every "
                       f"{health['interval_s']:g} s from before the workers started)")
    watched.grid(alpha=0.3)
    if health["series"]:
        watched.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return png(fig)


def health_section(summary: dict, *, png, table) -> str:
    """The report's "Target health" section ("" when nothing was watched). ``png(fig)`` and
    ``table(rows, head)`` are the page's own helpers (``replayer.judge.html``)."""
    health = summary.get("health")
    if not health:
        return ""
    series = {s["label"]: s for s in health["series"]}
    rows = []
    for src in health["sources"]:
        note = "; ".join(x for x in (
            src["ended"],
            f"{src['failures']} failed (last: {src['last_error']})" if src["failures"] else "",
            f"{src['empty']} empty answers" if src["empty"] else "") if x)
        if not src["series"]:
            rows.append([src["label"], 0, "n/a", "n/a", "n/a", "n/a", note or "no series"])
        for label in src["series"]:
            s = series[label]
            rows.append([label, s["samples"], _shown(s["start"], s["unit"]),
                         _shown(s["end"], s["unit"]), _shown(s["peak"], s["unit"]),
                         _shown(s["growth_per_hour"], s["unit"], per_hour=True), note])
    parts = ["<h2>Target health</h2>"]
    if health.get("error"):
        parts.append(f"<p class='fail'>watching stopped early: {html.escape(health['error'])}"
                     "</p>")
    parts.append(_plot(summary, health, png))
    parts.append(table(rows, ["series", "samples", "start", "end", "peak", "growth per hour",
                              "note"]))
    return "".join(parts)
