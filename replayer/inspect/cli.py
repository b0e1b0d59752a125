"""``rewind-inspect``: look at captured traffic in Redis, in an archive, or in an exported file."""

from __future__ import annotations

import argparse
import os
import sys

from replayer.source.timespec import join_relative_times
from sidecar.common import cli_args as a
from sidecar.contract.exit_codes import InspectExit

EXAMPLES = """\
examples:
  # what is there: streams in Redis and archives in a folder, with time spans and counts
  rewind-inspect list --source redis://127.0.0.1:6379/0 --source /archive

  # the last 15 minutes of 'orders', from Redis and (where trimmed) the archive
  rewind-inspect show --source redis://127.0.0.1:6379/0 --source /archive --stream orders --from -15m

  # Tuesday 10:00-10:15 as JSON Lines, piped to jq
  rewind-inspect show --source /archive --stream orders --from 2024-05-14T10:00 --to +15m --jsonl | jq .target

  # export a range to one file (zstd when the name ends in .zst), usable later as --source
  rewind-inspect export --source /archive --stream orders --from -1h --out orders-1h.jsonl.zst

  # requests by method, path (ids folded to {id}) and status
  rewind-inspect count --source orders-1h.jsonl.zst

  # values the server made and clients carried back (ids, tokens, ETags, CSRF), as rules
  rewind-inspect correlations --source /archive --stream orders --from -1h

  # check every segment of an archive against its checksum
  rewind-inspect verify --source /archive --stream orders

times: ISO-8601 (local time without an offset), now, -15m / -2h30m / -7d (before now),
  +15m (for --to: after --from), @EPOCH_SECONDS. --from is inclusive, --to exclusive;
  --from-id and --to-id are both inclusive (as in rewind-replay).

"""

EXIT_HELP = {
    InspectExit.OK: "done (an empty range is not an error)",
    InspectExit.FAILURE: "other failure (Redis unreachable, an unreadable segment; verify: a "
                         "segment failed)",
    InspectExit.USAGE: "bad arguments or --source",
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--source", action="append", default=None,
                        help="a Redis URL (with --stream), an archive folder, or an exported file; "
                        "repeat to join Redis and an archive [env REWIND_SOURCE, comma-separated]")
    a.add(common, "--stream", default=None, help="stream name (rewind:{NAME}:http)")
    rng = argparse.ArgumentParser(add_help=False)
    a.add(rng, "--from", dest="start", default=None, help="start of the capture-time window")
    a.add(rng, "--to", dest="end", default=None, help="end of the window (exclusive)")
    a.add(rng, "--from-id", default=None, help="first stream id (inclusive), e.g. 1715680800000-0")
    a.add(rng, "--to-id", default=None, help="last stream id (inclusive)")
    a.add(rng, "--order", default="capture", choices=["capture", "stream"],
          help="capture: by ts_ns (reordered within --reorder); stream: by stream id")
    a.add(rng, "--margin", type=a.duration, default="60s",
          help="how far stream ids may trail capture times (publish delay, clock skew)")
    a.add(rng, "--reorder", type=a.duration, default="2s",
          help="how far out of capture order the stream may be and still be put right")

    p = argparse.ArgumentParser(
        prog="rewind-inspect",
        description="List, print, export and count captured HTTP records, wherever they are: "
        "a Redis stream, an archive folder written by rewind-archive, or an exported file.",
        epilog=EXAMPLES + a.exit_codes_help(EXIT_HELP),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", parents=[common], help="streams and archives with their spans")
    ls.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    show = sub.add_parser("show", parents=[common, rng], help="print a range")
    show.add_argument("--jsonl", action="store_true", help="JSON Lines (jq-friendly), not a table")
    show.add_argument("--limit", type=int, default=None, help="stop after this many records")
    ex = sub.add_parser("export", parents=[common, rng], help="write a range to one file")
    ex.add_argument("--out", required=True, help="file to write (.jsonl, or .zst for zstd)")
    cnt = sub.add_parser("count", parents=[common, rng], help="count a range by request shape")
    cnt.add_argument("--by", default="method,path,status",
                     help="comma-separated keys: method, path, status, target, client, conn")
    cnt.add_argument("--top", type=int, default=30, help="rows to show")
    cnt.add_argument("--raw-paths", action="store_true",
                     help="do not fold ids in paths (/orders/123 -> /orders/{id})")
    cnt.add_argument("--jsonl", action="store_true", help="one JSON object per row")
    cor = sub.add_parser("correlations", parents=[common, rng],
                         help="values answers made and later requests carried back, as rules")
    cor.add_argument("--jsonl", action="store_true", help="one JSON object per rule")
    cor.add_argument("--top", type=int, default=50, help="rules to show")
    cor.add_argument("--min-count", type=int, default=1, help="rules seen fewer times are left out")
    cor.add_argument("--ttl", type=a.duration, default="10m",
                     help="a made value is forgotten this long (capture time) after last seen")
    cor.add_argument("--max-values", type=int, default=200_000,
                     help="values kept at most (made, and sent by clients): bounds memory")
    sub.add_parser("verify", parents=[common], help="check every segment of an archive")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(join_relative_times(sys.argv[1:] if argv is None else list(argv)))
    if not args.source:
        env = os.environ.get("REWIND_SOURCE", "")
        args.source = [s.strip() for s in env.split(",") if s.strip()]
    if not args.source:
        p.error("--source is required (a Redis URL, an archive folder or an exported file)")
    from replayer.inspect import commands as inspect_run
    try:
        return inspect_run.run(args)
    except inspect_run.UsageError as exc:
        print(f"rewind-inspect: {exc}", file=sys.stderr)
        return InspectExit.USAGE
    except BrokenPipeError:  # `| head`
        sys.stderr.close()
        return InspectExit.OK
    except Exception as exc:  # noqa: BLE001 -- one line for people, not a traceback
        print(f"rewind-inspect: {type(exc).__name__}: {exc}", file=sys.stderr)
        return InspectExit.FAILURE


if __name__ == "__main__":
    sys.exit(main())
