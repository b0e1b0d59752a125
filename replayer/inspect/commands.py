"""The commands of ``rewind-inspect`` (arguments parsed by ``inspect_cli``)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from sidecar.contract.manifest import Manifest
from sidecar.contract.archive_lines import record_line
from sidecar.contract.segments import SUFFIX, SegmentError, verify
from sidecar.contract.stream_ids import parse_id
from sidecar.common.redis_client import connect
from sidecar.contract.exit_codes import InspectExit

from replayer.source.archive_reader import ArchiveReader
from replayer.source.export import export
from replayer.source.file_reader import FileReader
from replayer.inspect.views import count_table, path_template, record_row, records_table_header, table
from replayer.source.ordering import ReadStats
from replayer.source.redis_reader import RedisReader
from replayer.source.reader import (
    REDIS_SCHEMES,
    SourceError,
    archives_in,
    open_source,
    redis_streams,
    resolve_archive,
)
from replayer.source.timespec import TimeSpecError, format_ns, parse_time
from replayer.source.window import Window

__all__ = ["UsageError", "run"]

COUNT_KEYS = ("method", "path", "status", "target", "client", "conn")


class UsageError(Exception):
    """Bad arguments found after parsing (a time, an id, a --source)."""


def run(args, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.command == "list":
        return _list(args, out)
    if args.command == "verify":
        return _verify(args, out)
    window = _window(args)
    try:
        source = open_source(args.source, args.stream, margin_ns=int(args.margin * 1e9),
                             reorder_ns=int(args.reorder * 1e9))
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    stats = ReadStats()
    records = source.read(window, order=args.order, stats=stats)
    if args.command == "show":
        n = _show(args, records, out)
    elif args.command == "correlations":
        from replayer.inspect import correlations
        n = correlations.run(args, records, out, err)
    elif args.command == "export":
        n = export(records, Path(args.out))
        print(f"exported {n:,} records to {args.out}", file=err)
    else:
        n = _count(args, records, out)
    if n == 0:
        print(_empty_message(window, source), file=err)
    elif stats.late:
        print(f"note: {stats.late} records were more than --reorder ({args.reorder:g}s) out of "
              "capture order and came out late", file=err)
    return InspectExit.OK


def _window(args) -> Window:
    try:
        now = time.time_ns()
        start = parse_time(args.start, now_ns=now) if args.start else None
        end = parse_time(args.end, now_ns=now, base_ns=start) if args.end else None
        return Window(start_ns=start, end_ns=end,
                      start_id=parse_id(args.from_id) if args.from_id else None,
                      end_id=parse_id(args.to_id) if args.to_id else None)
    except (TimeSpecError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _empty_message(window: Window, source) -> str:
    where = source.kind + (f" stream {source.stream!r}" if source.stream else "")
    if window.start_ns is not None and window.start_ns > time.time_ns():
        return (f"no records: the window {window.describe()} is in the future "
                f"(now is {format_ns(time.time_ns())})")
    return f"no records in {window.describe()} ({where})"


def _show(args, records, out) -> int:
    n = 0
    rows = [records_table_header()]
    for entry_id, rec in records:
        if args.limit is not None and n >= args.limit:
            break
        n += 1
        if args.jsonl:
            out.write(record_line(entry_id, rec).decode())
        else:
            rows.append(record_row(entry_id, rec))
            if len(rows) >= 200:  # print as we go; column widths per block of rows
                out.write(table(rows, right={4, 5, 6, 7}) + "\n")
                rows = [records_table_header()]
    if not args.jsonl and len(rows) > 1:
        out.write(table(rows, right={4, 5, 6, 7}) + "\n")
    return n


def _count(args, records, out) -> int:
    keys = [k.strip() for k in args.by.split(",") if k.strip()]
    bad = [k for k in keys if k not in COUNT_KEYS]
    if not keys or bad:
        raise UsageError(f"--by: unknown key {bad[0] if bad else ''!r}; use {', '.join(COUNT_KEYS)}")
    counts: Counter = Counter()
    for _id, r in records:
        values = []
        for k in keys:
            if k == "path":
                values.append(r.target.split("?", 1)[0] if args.raw_paths else path_template(r.target))
            else:
                values.append(getattr(r, k))
        counts[tuple(values)] += 1
    total = sum(counts.values())
    if args.jsonl:
        for key, n in counts.most_common(args.top):
            out.write(orjson.dumps({**dict(zip(keys, key, strict=True)), "count": n}).decode() + "\n")
    elif total:
        out.write(count_table(counts, keys, args.top) + "\n")
    return total


def _list(args, out) -> int:
    found = []
    for spec in args.source:
        if spec.startswith(REDIS_SCHEMES):
            client = connect(spec)
            names = [args.stream] if args.stream else redis_streams(client)
            found += [(n, RedisReader(client, n, where=spec.split("@")[-1]).span()) for n in names]
            continue
        path = Path(spec)
        if path.is_file():
            found.append(("-", FileReader(path).span()))
        elif path.is_dir():
            roots = [resolve_archive(path, args.stream)] if args.stream else archives_in(path)
            found += [(Manifest(r).load().stream or r.name, ArchiveReader(r).span()) for r in roots]
        else:
            raise UsageError(f"--source {spec}: no such file or folder")
    if args.jsonl:
        for stream, span in found:
            out.write(orjson.dumps({"stream": stream, **span.to_dict()}).decode() + "\n")
    elif found:
        from replayer.inspect.views import spans_table
        out.write(spans_table(found) + "\n")
    else:
        print("no streams or archives found", file=sys.stderr)
    return InspectExit.OK


def _verify(args, out) -> int:
    folders = [Path(s) for s in args.source if not s.startswith(REDIS_SCHEMES)]
    if not folders:
        raise UsageError("verify needs an archive folder as --source")
    failed = checked = 0
    for folder in folders:
        try:
            root = resolve_archive(folder, args.stream)
        except SourceError as exc:
            raise UsageError(str(exc)) from None
        state = Manifest(root).load()
        listed = state.files()
        for seg in state.segments:
            checked += 1
            try:
                verify(root / seg.file, seg)
            except (SegmentError, OSError) as exc:
                failed += 1
                out.write(f"FAIL {seg.file}: {exc}\n")
        for path in sorted(root.glob(f"*/*{SUFFIX}")):
            if str(path.relative_to(root)) not in listed:
                out.write(f"UNLISTED {path.relative_to(root)} (the archiver lists it at its next start)\n")
        out.write(f"{root}: {checked} segments checked, {failed} failed\n")
    return InspectExit.FAILURE if failed else InspectExit.OK
