"""The report as one self-contained HTML page: ``render_html(summary) -> str``.

Every plot is drawn with matplotlib (Agg) and embedded as a base64 PNG: no script, no CDN, so
the page opens offline from a CI artifact.
"""

from __future__ import annotations

import base64
import html
import io



class _Pyplot:
    """matplotlib.pyplot (Agg), imported when the first plot is drawn: importing it costs about
    a second of CPU, which a replay's start should not wait for."""

    def __getattr__(self, name: str):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot

        return getattr(matplotlib.pyplot, name)


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


plt = _Pyplot()

from replayer.judge import correlation_report  # noqa: E402
from replayer.judge.health import health_section  # noqa: E402

__all__ = ["render_html"]

CSS = """body{font-family:sans-serif;margin:24px;color:#222;max-width:1300px}
h1{margin-bottom:4px}table{border-collapse:collapse;margin:8px 0 20px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#176c2a;font-weight:bold}
.fail{color:#b3151b;font-weight:bold}img{max-width:100%;border:1px solid #eee;margin:6px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:10px}pre{background:#f7f7f7;padding:8px}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _log_axis(ax) -> None:
    """Log scale with plain numbers (0.5, 2, 100) as tick labels."""
    ax.set_yscale("log")
    fmt = _ticker().FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(_ticker().FuncFormatter(
        lambda y, _: f"{y:g}" if str(f"{y:g}")[0] in "25" else ""))


def _line(series: dict, keys: list[tuple], title: str, ylabel: str, log=False) -> str:
    """One line per (key, label[, matplotlib style]) of ``series``."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    t = series["t"]
    for key, label, *style in keys:
        ys = series.get(key) or []
        if ys and any(y is not None for y in ys):
            ax.plot(t, [float("nan") if y is None else y for y in ys], label=label,
                    **(style[0] if style else {"lw": 1.4}))
    ax.set_title(title)
    ax.set_xlabel(f"seconds since start (buckets of {series['bucket_s']} s)")
    ax.set_ylabel(ylabel)
    if log:
        _log_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def _bars(groups: dict[str, dict[str, float]], title: str, ylabel: str, log=False) -> str:
    """groups: x label -> {series label: value}."""
    labels = list(groups)
    names = list(dict.fromkeys(k for g in groups.values() for k in g))  # first-seen order
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [groups[lab].get(name) or 0 for lab in labels], width, label=name)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if log:
        _log_axis(ax)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _table(rows: list[list], head: list[str]) -> str:
    th = "".join(f'<th class="{"l" if i == 0 else ""}">{html.escape(h)}</th>'
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(
        f'<td class="{"l" if i == 0 else ""}">{html.escape("" if v is None else str(v))}</td>'
        for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _ramp(r: dict) -> str:
    """The ramp: capacity, a plot of achieved rate and p95 per step with the SLO line, a table."""
    steps = r["steps"]
    cap = r["capacity_rps"]
    head = (f"<h2>Ramp: capacity {cap if cap is not None else 'below the first step'} "
            f"requests/s</h2><p>SLO <code>{html.escape(r['slo'])}</code> judged per step "
            f"({r['step_s']} s each, {r['judge_after_s']} s after its end); "
            + (f"broken at {r['broken_at_rps']}/s by {html.escape('; '.join(r['broken_by']))}"
               if r["broken_at_rps"] is not None else
               "held up to the last step (--ramp-max): the capacity is at least that") + "</p>")
    fig, ax = plt.subplots(figsize=(8, 3.4))
    x = [st["offered_rps"] for st in steps]
    ax.plot(x, [st["achieved_rps"] for st in steps], "o-", label="achieved requests/s")
    ax.plot(x, x, ":", color="grey", lw=1, label="offered")
    ax.set_xlabel("offered requests/s (one point per step)")
    ax.set_ylabel("requests / s")
    ax2 = ax.twinx()
    ax2.plot(x, [st["p95_ms"] if st["p95_ms"] is not None else float("nan") for st in steps],
             "s-", color="tab:red", label="p95 ms")
    limit = r["slo_limits"].get("p95")
    if limit is not None:
        ax2.axhline(limit, color="tab:red", ls="--", lw=1, label=f"SLO p95 < {limit:g} ms")
    ax2.set_ylabel("p95 ms")
    if cap is not None:
        ax.axvline(cap, color="tab:green", ls="-.", lw=1, label=f"capacity {cap:g}/s")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.set_title("Ramp: achieved rate and p95 per step")
    ax.grid(alpha=0.3)
    table = _table([[st["step"], st["offered_rps"], st["achieved_rps"], st["sent"], st["p50_ms"],
                     st["p95_ms"], st["p99_ms"], f"{st['error_rate'] or 0:.2%}",
                     st["scheduler_lag_p99_ms"], "held" if st["held"] else
                     "BROKE: " + "; ".join(st["failing"])] for st in steps],
                   ["step", "offered/s", "achieved/s", "sent", "p50 ms", "p95 ms", "p99 ms",
                    "errors", "sched. lag p99 ms", "SLO"])
    return head + _png(fig) + table


def _mode(run: dict) -> str:
    if run.get("follow"):
        return "follow (shadow traffic: each request sent as it arrives)"
    if run["mode"] == "recorded":
        return f"recorded (speed {run['speed']:g})"
    if run["mode"] == "rps":
        return f"rps ({run['rate']:g} requests/s)"
    return run["mode"]


def render_html(s: dict) -> str:
    run, tot, series = s["run"], s["totals"], s["series"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>rewind replay report"
             f"</title><style>{CSS}</style></head><body><h1>rewind replay report</h1>"]
    v = s.get("verdict")
    if v is not None:
        cls = "pass" if v["passed"] else "fail"
        parts.append(f'<p class="{cls}">Verdict: {"PASS" if v["passed"] else "FAIL"}</p>')
        failing = [c for c in v["checks"] if not c["ok"]]
        if failing:
            parts.append("<pre>" + html.escape("\n".join(c["line"] for c in failing)) + "</pre>")
    if s.get("ramp"):
        parts.append(_ramp(s["ramp"]))
    parts.append(_table([
        ["target", run["target"]], ["source", run["source"]],
        ["mode", _mode(run)],
        ["workers", run["workers"]], ["planned requests", s["plan"]["steps"]],
        ["connections", s["plan"]["connections"]], ["skipped", s["plan"]["skipped"] or "none"],
        ["sent", tot["sent"]], ["achieved RPS", tot["rps"]],
        ["errors (transport + 5xx)", f"{tot['errors']} ({tot['error_rate']:.2%})"],
        ["status mismatch rate", f"{tot['status_mismatch_rate']:.2%}"],
        ["body mismatch rate", f"{tot['body_mismatch_rate']:.2%} of {tot['bodies_compared']}"],
        ["latency ms p50/p90/p95/p99/max", "/".join(str(s["latency_ms"][k]) for k in
                                                    ("p50", "p90", "p95", "p99", "max"))],
        ["schedule lag ms p50/p99/max", "n/a (max mode)" if not s["lag_ms"] else
         "/".join(str(s["lag_ms"][k]) for k in ("p50", "p99", "max"))],
        ["percentiles", f"within {s.get('percentiles_relative_error', 0.01):.0%} of the exact "
                        "value (DDSketch); counts and rates exact"],
    ], ["run", ""]))
    if series["t"]:
        parts.append("<h2>Over time</h2><div class='grid'>")
        parts.append(_line(series, [("rps", "sent"), ("scheduled_rps", "scheduled"),
                                    ("errors_per_s", "errors")],
                           "Requests per second (sent, scheduled, errors)", "requests / s"))
        parts.append(_line(series, [("p50_ms", "p50"), ("p90_ms", "p90"), ("p95_ms", "p95"),
                                    ("p99_ms", "p99"), ("max_ms", "max")],
                           "Latency percentiles over time", "ms", log=True))
        parts.append(_line(series, [("errors_per_s", "errors / s")], "Errors over time",
                           "errors / s"))
        if s["lag_ms"]:
            # max is drawn thick and faint under p99, p99 thin and dashed on top: where the
            # two are equal (few requests in a bucket) both stay visible
            parts.append(_line(series, [("lag_max_ms", "max", {"lw": 4, "alpha": 0.35}),
                                        ("lag_p50_ms", "p50", {"lw": 1.4}),
                                        ("lag_p99_ms", "p99", {"lw": 1.4, "ls": "--"})],
                               "Schedule lag over time (sent - due)", "ms", log=True))
        parts.append("</div>")
    parts.append(health_section(s, png=_png, table=_table))  # target health (issue 13)
    eps = s["endpoints"]
    if eps:
        top = dict(list(eps.items())[:12])
        parts.append("<h2>Per endpoint</h2><div class='grid'>")
        parts.append(_bars({e: {k: d["latency_ms"][k] for k in ("p50", "p90", "p95", "p99", "max")}
                            for e, d in top.items()},
                           "Latency percentiles per endpoint", "ms", log=True))
        codes = {c: {"replayed": s["status_codes"].get(c, 0),
                     "recorded": s["recorded_status_codes"].get(c, 0)}
                 for c in sorted(set(s["status_codes"]) | set(s["recorded_status_codes"]))}
        parts.append(_bars(codes, "Status codes: replayed vs recorded", "responses"))
        parts.append(_bars({e: {"error rate": d["error_rate"],
                                "status mismatch": d["status_mismatch_rate"],
                                "body mismatch": d["body_mismatch_rate"]}
                            for e, d in top.items()},
                           "Errors and mismatches per endpoint", "share of requests"))
        parts.append("</div>")
        parts.append(_table([[e, d["count"], d["errors"], f"{d['error_rate']:.2%}",
                              f"{d['status_mismatch_rate']:.2%}", f"{d['body_mismatch_rate']:.2%}",
                              d["latency_ms"]["p50"], d["latency_ms"]["p95"],
                              d["latency_ms"]["p99"], d["status_codes"],
                              ", ".join(list(d["diff_paths"])[:4])]
                             for e, d in eps.items()],
                            ["endpoint", "requests", "errors", "error rate", "status mismatch",
                             "body mismatch", "p50 ms", "p95 ms", "p99 ms", "status codes",
                             "differing fields"]))
    parts.append(correlation_report.html_section(s, _table))  # correlation hook
    if s.get("noise"):
        n = s["noise"]
        parts.append(f"<h2>Noise learned from the baseline</h2><p>Fields that differed between "
                     f"two runs against {html.escape(n['baseline'])} ({n['compared']} answers "
                     f"compared); ignored per endpoint in the comparison above.</p>")
        parts.append(_table([[e, ", ".join(p)] for e, p in n["paths"].items()] or
                            [["(none)", "no field differed"]], ["endpoint", "noisy fields"]))
    if s["errors"]:
        parts.append("<h2>Errors</h2>" + _table([[k, n] for k, n in s["errors"].items()],
                                                ["error", "count"]))
    if v is not None:
        parts.append("<h2>Threshold checks</h2><pre>" +
                     html.escape("\n".join(c["line"] for c in v["checks"])) + "</pre>")
    parts.append("</body></html>")
    return "".join(parts)
