"""`make bench-archive`: how fast rewind-archive archives, how well it compresses, and how fast a
range reads back.

1. N records of realistic JSON API traffic (tests/support/traffic.py: an orders API, bodies of a
   few hundred bytes to a few KiB, bearer tokens, request ids) are XADDed to a fresh Redis.
2. rewind-archive --drain archives them (the real command, one consumer, then two consumers
   sharing the stream); records/s is measured between its "started" and "stopped" log lines.
3. Compression: JSON Lines bytes / segment bytes, and the captured bytes (what the stream
   holds: bodies, headers, request line) / segment bytes.
4. Read-back: the whole range from the archive, a 10 % time window from the archive, and the
   whole range from Redis, through replayer.source.reader (records decoded to Record objects).

Prints a table and writes JSON (--out). Numbers from a shared 2-core VM where Redis, the
archiver(s) and this script share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from replayer.source.ordering import ReadStats
from replayer.source.reader import open_source
from replayer.source.window import Window
from sidecar.contract.manifest import Manifest
from ci.bench.lib import write_result  # noqa: E402
from tests.support.redis_server import RedisServer
from tests.support.traffic import api_records, xadd_all

STREAM = "bench"


def captured_bytes(rec) -> int:
    head = len(rec.method) + len(rec.target) + sum(len(k) + len(v) + 4 for k, v in rec.headers)
    resp = sum(len(k) + len(v) + 4 for k, v in rec.resp_headers)
    return head + len(rec.body) + resp + len(rec.resp_body)


def archive(url: str, out: Path, consumers: int, extra: list[str]) -> dict:
    procs = [subprocess.Popen(
        [sys.executable, "-m", "sidecar.archive.cli", "--redis", url, "--stream", STREAM,
         "--out", str(out), "--consumer", f"bench-{i}", "--drain", "--metrics-port", "0",
         "--log-format", "json", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(consumers)]
    starts, stops, records = [], [], 0
    for p in procs:
        for line in p.communicate(timeout=1800)[0].splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "archive.started":
                starts.append(_ts(e["timestamp"]))
            elif e.get("event") == "archive.stopped":
                stops.append(_ts(e["timestamp"]))
                records += e["records"]
        if p.returncode != 0:
            raise SystemExit(f"rewind-archive exited {p.returncode}")
    # --drain waits ~0.2 s of quiet before it exits; not part of the archiving time
    seconds = max(stops) - min(starts) - 0.2
    return {"consumers": consumers, "records": records, "seconds": round(seconds, 2),
            "records_per_s": round(records / seconds)}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_back(specs: list[str], window: Window) -> dict:
    stats = ReadStats()
    started = time.perf_counter()
    n = sum(1 for _ in open_source(specs, STREAM).read(window, stats=stats))
    seconds = time.perf_counter() - started
    return {"records": n, "seconds": round(seconds, 2), "records_per_s": round(n / seconds),
            "scanned": stats.scanned}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records to archive")
    ap.add_argument("--segment-bytes", default="64MiB", help="rewind-archive --segment-bytes")
    ap.add_argument("--out", default="bench-results/archive.json", help="JSON output")
    args = ap.parse_args()

    print(f"generating {args.records:,} records of JSON API traffic", flush=True)
    recs = list(api_records(args.records, seed=42))
    raw_captured = sum(captured_bytes(r) for r in recs)
    result = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                          "python": platform.python_version()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "make bench-archive", "records": args.records,
              "avg_captured_bytes": round(raw_captured / len(recs))}
    with RedisServer() as redis_srv, tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for consumers in (1, 2):
            redis_srv.client().flushall()
            print(f"XADD {args.records:,} records", flush=True)
            xadd_all(redis_srv.client(), STREAM, recs, publish_delay_ms=5)
            out = Path(tmp) / f"c{consumers}"
            print(f"rewind-archive --drain, {consumers} consumer(s)", flush=True)
            runs[consumers] = archive(redis_srv.url, out, consumers,
                                      ["--segment-bytes", args.segment_bytes])
            print(f"  {runs[consumers]['records_per_s']:,} records/s", flush=True)
        segs = Manifest(Path(tmp) / "c1" / STREAM).load().segments
        written = sum(s.bytes for s in segs)
        result["archive_1_consumer"] = runs[1]
        result["archive_2_consumers"] = runs[2]
        result["compression"] = {
            "segments": len(segs), "segment_bytes": written,
            "jsonl_bytes": sum(s.raw_bytes for s in segs),
            "jsonl_ratio": round(sum(s.raw_bytes for s in segs) / written, 2),
            "captured_ratio": round(raw_captured / written, 2),
            "bytes_per_record": round(written / args.records, 1)}
        archive_dir = str(Path(tmp) / "c1" / STREAM)
        times = sorted(r.ts_ns for r in recs)
        tenth = Window(start_ns=times[len(times) * 45 // 100], end_ns=times[len(times) * 55 // 100])
        print("reading back", flush=True)
        result["read_archive_all"] = read_back([archive_dir], Window())
        result["read_archive_10pct_window"] = read_back([archive_dir], tenth)
        result["read_redis_all"] = read_back([redis_srv.url], Window())

    c = result["compression"]
    print("\n| measure | value |")
    print("|---|---:|")
    for name, key in (("archive, 1 consumer", "archive_1_consumer"),
                      ("archive, 2 consumers", "archive_2_consumers")):
        print(f"| {name} (records/s) | {result[key]['records_per_s']:,} |")
    print(f"| compression, JSON Lines / segment bytes | {c['jsonl_ratio']}x |")
    print(f"| compression, captured bytes / segment bytes | {c['captured_ratio']}x |")
    print(f"| segment bytes per record | {c['bytes_per_record']} |")
    for name, key in (("read back, whole range from the archive", "read_archive_all"),
                      ("read back, 10 % time window from the archive", "read_archive_10pct_window"),
                      ("read back, whole range from Redis", "read_redis_all")):
        print(f"| {name} (records/s) | {result[key]['records_per_s']:,} |")
    print(f"\n{args.records:,} records, {result['avg_captured_bytes']:,} captured bytes each on "
          f"average; goals: >= 50,000 records/s archived, >= 8x compression")
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
