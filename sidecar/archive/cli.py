"""``rewind-archive``: archive a stream into zstd-compressed JSON Lines segments, crash-safely."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path

import structlog

from sidecar.common import cli_args as a
from sidecar.common import logs
from sidecar.contract.exit_codes import ArchiveExit

__all__ = ["EXIT_HELP", "build_parser", "main", "parse"]

EXIT_HELP = {
    ArchiveExit.OK: "stopped (SIGTERM/SIGINT, or --drain finished)",
    ArchiveExit.FAILURE: "other failure",
    ArchiveExit.USAGE: "bad arguments (or the metrics port in use)",
    ArchiveExit.FOLDER: "--out unusable or --consumer already running",
    ArchiveExit.WRITES: "segment writes kept failing for --write-retry-for (nothing unarchived "
                        "was acked)",
}

EXAMPLES = """\
examples:
  # archive rewind:{orders}:http into /archive/orders/, one segment a minute (or 64 MiB)
  rewind-archive --redis redis://127.0.0.1:6379/0 --stream orders --out /archive

  # two archivers sharing the work (same --out, a volume both can lock files on)
  rewind-archive --stream orders --out /archive --consumer archiver-0
  rewind-archive --stream orders --out /archive --consumer archiver-1

  # free Redis memory behind the archive, keep 30 days of segments
  rewind-archive --stream orders --out /archive --trim-archived --keep-days 30

  # archive what is in the stream now, then exit (a batch job)
  rewind-archive --stream orders --out /archive --drain

""" + a.exit_codes_help(EXIT_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-archive",
        description="Read a capture stream rewind:{NAME}:http through the consumer group "
        "'rewind-archiver' and write it to time-partitioned segments of zstd-compressed JSON "
        "Lines under OUT/NAME/ (zstdcat SEGMENT | jq), with a manifest. Entries are acked only "
        "once their segment is fsynced and listed; a killed archiver loses nothing and writes "
        "nothing twice when it comes back.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add(p, "--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    a.add(p, "--stream", required=True, help="stream name; reads rewind:{NAME}:http")
    a.add(p, "--out", required=True, help="archive folder; this stream's archive is OUT/NAME/")
    a.add(p, "--consumer", default=socket.gethostname(),
          help="consumer name in the group, unique per running archiver (pod or host name)")
    a.add(p, "--segment-bytes", type=a.size, default="64MiB",
          help="close a segment at this many JSON Lines bytes (before compression)")
    a.add(p, "--segment-seconds", type=a.duration, default="60s",
          help="close a segment this long after its first record, even if the stream is idle")
    a.add(p, "--batch", type=int, default=1000, help="entries per XREADGROUP")
    a.add(p, "--compression-level", type=int, default=3, help="zstd level (1-19)")
    a.add(p, "--compression-threads", type=int, default=0,
          help="zstd worker threads (0: compress in the archiver's own thread)")
    a.add(p, "--trim-archived", action="store_true",
          help="XTRIM MINID the stream below the oldest entry not yet archived")
    a.add(p, "--trim-keep", type=a.duration, default="0s",
          help="with --trim-archived: keep entries younger than this in Redis anyway")
    a.add(p, "--keep-days", type=float, default=None,
          help="delete segments whose newest record is older than this many days")
    a.add(p, "--claim-interval", type=a.duration, default="30s",
          help="how often to look for dead consumers whose pending entries to take over")
    a.add(p, "--claim-idle", type=a.duration, default="10m",
          help="a consumer with no lock file in OUT/NAME/consumers/ counts as dead after this "
          "long without reading")
    a.add(p, "--write-retry-for", type=a.duration, default="5m",
          help="retry failing segment writes (disk full, read-only) this long, then exit 4")
    a.add(p, "--verify-on-start", default="last", choices=["last", "all"],
          help="check the checksum of each consumer's newest segment, or of every segment")
    a.add(p, "--drain", action="store_true",
          help="exit once nothing new arrives (archive what the stream holds now)")
    a.add(p, "--stream-maxlen", type=int, default=None,
          help="the capture's --maxlen for this stream: exported as rewind_archive_stream_maxlen "
          "next to rewind_archive_stream_length, so an alert can warn before the cap trims "
          "entries not yet archived")
    a.add(p, "--metrics-port", type=a.port, default=9103,
          help="serve Prometheus metrics on this port (0: off)")
    a.add(p, "--metrics-addr", default="0.0.0.0", help="address for the metrics server")
    logs.add_arguments(p)
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)  # REWIND_TRIM_ARCHIVED, REWIND_DRAIN: cli_args.add reads them
    from sidecar.archive.lock import check_name
    from sidecar.contract.streams import stream_key
    from sidecar.common.redis_client import connect
    try:
        stream_key(args.stream)
    except ValueError as exc:
        p.error(f"--stream: {exc}")
    try:
        check_name(args.consumer)
    except ValueError as exc:
        p.error(f"--consumer: {exc}")
    try:
        connect(args.redis)  # checks the URL; does not contact Redis
    except ValueError as exc:
        p.error(f"--redis: {exc}")
    if args.segment_bytes < 1024:
        p.error(f"--segment-bytes must be at least 1KiB, got {args.segment_bytes}")
    if args.segment_seconds <= 0 or args.claim_interval <= 0:
        p.error("--segment-seconds and --claim-interval must be positive")
    if args.batch < 1:
        p.error(f"--batch must be a positive integer, got {args.batch}")
    if not 1 <= args.compression_level <= 22:
        p.error(f"--compression-level must be 1..22, got {args.compression_level}")
    if args.compression_threads < 0:
        p.error("--compression-threads must be 0 or more")
    if args.keep_days is not None and args.keep_days <= 0:
        p.error(f"--keep-days must be positive, got {args.keep_days}")
    if args.stream_maxlen is not None and args.stream_maxlen <= 0:
        p.error(f"--stream-maxlen must be positive, got {args.stream_maxlen}")
    if args.claim_idle < args.segment_seconds * 2:
        p.error(f"--claim-idle ({args.claim_idle:g}s) must be at least twice --segment-seconds "
                f"({args.segment_seconds:g}s): a live archiver keeps entries pending that long")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs.configure_from(args.log_level, args.log_format)
    log = structlog.get_logger("rewind.archive")

    from sidecar.archive.metrics import ArchiveMetrics
    from sidecar.archive.archiver import ArchiverConfig, ArchiveWriteFailed, Archiver
    from sidecar.archive.lock import ConsumerBusy
    from sidecar.common.redis_client import connect, redact_url

    root = Path(args.out) / args.stream
    config = ArchiverConfig(
        stream=args.stream, root=root, consumer=args.consumer, segment_bytes=args.segment_bytes,
        segment_seconds=args.segment_seconds, batch=args.batch, level=args.compression_level,
        threads=args.compression_threads, trim_archived=args.trim_archived,
        trim_keep_s=args.trim_keep, keep_days=args.keep_days,
        claim_interval_s=args.claim_interval, claim_idle_s=args.claim_idle,
        write_retry_for_s=args.write_retry_for, verify_all=args.verify_on_start == "all",
        lock_wait_s=2.0, stream_maxlen=args.stream_maxlen,
    )
    metrics = ArchiveMetrics()
    archiver = Archiver(connect(args.redis), config, metrics=metrics, log=log)
    try:
        archiver.open()
    except ConsumerBusy as exc:
        log.error("archive.consumer_busy", error=str(exc))
        return ArchiveExit.FOLDER
    except OSError as exc:
        log.error("archive.out_unusable", out=str(root), error=str(exc),
                  hint="--out must be a writable folder (check the volume, its mode, free space)")
        return ArchiveExit.FOLDER
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if args.metrics_port:
            try:
                metrics.serve(args.metrics_port, args.metrics_addr)
            except OSError as exc:
                log.error("archive.metrics_port", port=args.metrics_port, error=str(exc))
                return ArchiveExit.USAGE
        log.info("archive.started", stream=args.stream, out=str(root), consumer=args.consumer,
                 redis=redact_url(args.redis), segment_bytes=args.segment_bytes,
                 segment_seconds=args.segment_seconds, trim_archived=args.trim_archived,
                 keep_days=args.keep_days, drain=args.drain)
        try:
            archiver.run(stop, drain=args.drain)
        except ArchiveWriteFailed as exc:
            log.error("archive.gave_up", error=str(exc), after_s=args.write_retry_for,
                      note="nothing unarchived was acked; restart once --out is writable")
            return ArchiveExit.WRITES
        except Exception as exc:  # noqa: BLE001 -- one structured line, then exit 1
            log.exception("archive.failed", error=f"{type(exc).__name__}: {exc}",
                          note="entries not yet archived stay pending in Redis")
            return ArchiveExit.FAILURE
    finally:
        archiver.close()
    log.info("archive.stopped", records=archiver.archived)
    return ArchiveExit.OK




if __name__ == "__main__":
    sys.exit(main())
