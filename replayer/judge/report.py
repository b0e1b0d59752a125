"""Write a run's report into a folder: ``write_report(dir, summary)``.

Files: ``summary.json`` (every number), ``report.html`` (plots, one self-contained page),
``junit.xml`` (one test case per threshold check, for CI), ``locust_stats.csv`` (Locust's own
per-endpoint statistics, aggregated from the workers) when the stats are given.
"""

from __future__ import annotations

import csv
import os
from xml.sax.saxutils import quoteattr

import orjson

from replayer.judge.html import render_html

__all__ = ["junit_xml", "write_report"]


def junit_xml(summary: dict) -> str:
    checks = (summary.get("verdict") or {}).get("checks", [])
    tot = summary["totals"]
    cases = [f'<testcase classname="rewind.replay" name="replay ran" time="{tot["duration_s"] or 0}">'
             f'<system-out>sent {tot["sent"]}, errors {tot["errors"]}, rps {tot["rps"]}'
             f"</system-out></testcase>"]
    for c in checks:
        name = quoteattr(f'{c["bound"]}_{c["metric"]} [{c["scope"]}]')
        body = "" if c["ok"] else f'<failure message={quoteattr(c["line"])}/>'
        cases.append(f'<testcase classname="rewind.thresholds" name={name}>{body}</testcase>')
    failures = sum(1 for c in checks if not c["ok"])
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuite name="rewind-replay" tests="{len(cases)}" failures="{failures}" '
            f'errors="0">' + "".join(cases) + "</testsuite>\n")


def write_report(folder: str, summary: dict, stats=None) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "summary.json"), "wb") as f:
        f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    with open(os.path.join(folder, "report.html"), "w") as f:
        f.write(render_html(summary))
    with open(os.path.join(folder, "junit.xml"), "w") as f:
        f.write(junit_xml(summary))
    if stats is not None:
        with open(os.path.join(folder, "locust_stats.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Type", "Name", "Requests", "Failures", "Median ms", "95% ms", "99% ms",
                        "Max ms", "RPS"])
            for e in [*stats.entries.values(), stats.total]:
                w.writerow([e.method or "", e.name, e.num_requests, e.num_failures,
                            e.get_response_time_percentile(0.5),
                            e.get_response_time_percentile(0.95),
                            e.get_response_time_percentile(0.99), e.max_response_time,
                            round(e.total_rps, 2)])
