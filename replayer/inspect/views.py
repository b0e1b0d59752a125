"""What ``rewind-inspect`` prints: short tables of spans and records, counts by request shape."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from sidecar.contract.record import Record

from replayer.source.timespec import format_ns
from replayer.source.window import Span

__all__ = ["count_table", "path_template", "record_row", "records_table_header", "spans_table"]

_ID_SEGMENT = re.compile(
    r"/(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,})(?=/|$)")


def path_template(target: str) -> str:
    """``/orders/123/items?x=1`` -> ``/orders/{id}/items``: the query goes, ids become {id}."""
    return _ID_SEGMENT.sub("/{id}", target.split("?", 1)[0])


def table(rows: list[list[str]], right: set[int] = frozenset()) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def spans_table(spans: Iterable[tuple[str, Span]]) -> str:
    rows = [["KIND", "STREAM", "RECORDS", "FIRST", "LAST", "WHERE", "DETAIL"]]
    for stream, s in spans:
        rows.append([s.kind, stream, f"{s.count:,}", format_ns(s.first_ts_ns),
                     format_ns(s.last_ts_ns), s.where, s.detail])
    return table(rows, right={2})


RECORD_HEADER = ["TIME (UTC)", "ID", "METHOD", "TARGET", "STATUS", "LATENCY", "REQ B", "RESP B"]


def records_table_header() -> list[str]:
    return list(RECORD_HEADER)


def record_row(entry_id: str, r: Record, width: int = 60) -> list[str]:
    target = r.target if len(r.target) <= width else r.target[: width - 1] + "…"
    return [format_ns(r.ts_ns), entry_id, r.method, target, str(r.status or "-"),
            f"{r.latency_us / 1000:.1f}ms", str(r.body_len), str(r.resp_body_len)]


def count_table(counts: Counter, keys: list[str], top: int) -> str:
    total = sum(counts.values())
    rows = [[k.upper() for k in keys] + ["COUNT", "SHARE"]]
    for key, n in counts.most_common(top):
        rows.append([str(v) for v in key] + [f"{n:,}", f"{100 * n / total:.1f}%"])
    rest = len(counts) - min(top, len(counts))
    if rest:
        n = total - sum(n for _k, n in counts.most_common(top))
        rows.append([f"({rest} more)"] + [""] * (len(keys) - 1) + [f"{n:,}", f"{100 * n / total:.1f}%"])
    rows.append(["total"] + [""] * (len(keys) - 1) + [f"{total:,}", "100.0%" if total else "-"])
    return table(rows, right={len(keys), len(keys) + 1})
