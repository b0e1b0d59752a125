"""``rewind-replay``'s flags: ``build_parser()`` and the argument types it uses.

Every flag also reads ``REWIND_<FLAG>`` (``sidecar.common.cli_args``); ``--help`` ends with the
exit codes, written from ``sidecar.contract.exit_codes.ReplayExit``. What the values mean
together is checked in ``replayer.replay.options``.
"""

from __future__ import annotations

import argparse
import re

from sidecar.common import cli_args as a
from sidecar.common import logs
from sidecar.contract.exit_codes import ReplayExit

__all__ = ["EXIT_HELP", "bound", "build_parser", "header", "pid", "positive", "regex"]

EXAMPLES = """\
examples:
  # an exported file, as recorded, against a candidate, 4 workers, with a report and a verdict
  rewind-replay --source capture.jsonl --target http://candidate:8080 --workers 4 \\
      --report out/ --thresholds thresholds.json

  # the last 15 minutes of a Redis stream at twice the recorded speed, new token, no health checks
  rewind-replay --source redis://redis:6379/0 --stream orders --from -15m --speed 2 \\
      --target http://candidate:8080 --set-header 'Authorization: Bearer NEW' --exclude '^/healthz'

  # a fixed 500 requests/s for 10 minutes, looping the range; as fast as possible
  rewind-replay --source capture.jsonl --target http://c:8080 --mode rps --rps 500 --loop --duration 10m
  rewind-replay --source capture.jsonl --target http://c:8080 --mode max --workers 2

  # capacity: 100, 200, ... 2000 requests/s, 30 s each, until p95 >= 200 ms or 1 % errors
  rewind-replay --source capture.jsonl --target http://c:8080 --mode ramp --ramp-start 100 \\
      --ramp-step 100 --ramp-max 2000 --step-duration 30s --slo 'p95<200ms,errors<1%' --report out/

  # a stateful API replayed against a fresh instance: ids, tokens, ETags carried (on by
  # default), capture-time timestamps moved to now, JWTs re-signed with the test key
  rewind-replay --source capture.jsonl --target http://fresh:8080 --shift-time --jwt-key key.pem

  # shadow traffic: mirror what reaches the stream from now on, until Ctrl-C
  rewind-replay --source redis://redis:6379/0 --stream orders --follow --target http://c:8080

  # learn noisy fields from two runs against the current release, then judge the candidate
  rewind-replay --source capture.jsonl --target http://c:8080 --baseline http://prod:8080 \\
      --thresholds thresholds.json --report out/

  # a 3-hour soak at 200/s: live metrics on :9104, the target's memory watched, a leak fails
  rewind-replay --source capture.jsonl --target http://c:8080 --mode rps --rps 200 --loop \\
      --duration 3h --metrics-port 9104 --watch-pid 4242 --watch-prometheus http://prom:9090 \\
      --watch 'container_memory_working_set_bytes{pod=~"api-.*"}' --thresholds soak.json

  # workers started elsewhere: the master waits for 4 `rewind-replay-worker --master-host M`
  rewind-replay --source capture.jsonl --target http://c:8080 --external-workers 4 \\
      --master-bind-port 5557 --from 1732312345678-0 --to 1732312999999-0

thresholds file (JSON; max_ or min_ with p50_ms p90_ms p95_ms p99_ms max_ms error_rate
status_mismatch_rate body_mismatch_rate rps lag_p99_ms; max_memory_growth_mib_per_hour for the
watched series; see docs/replay.md):
  {"max_p95_ms": 200, "max_error_rate": 0.01, "max_status_mismatch_rate": 0.01}

"""

EXIT_HELP = {
    ReplayExit.OK: "replayed (and thresholds passed; ramp: at least the first step held the SLO)",
    ReplayExit.FAILED: "thresholds failed (ramp: even the first step broke the SLO)",
    ReplayExit.USAGE: "bad arguments or input (empty range, bad record or schema version, "
                      "malformed thresholds file)",
    ReplayExit.TARGET: "target unreachable",
    ReplayExit.SOURCE: "source unreachable (Redis)",
    ReplayExit.RUN: "the run itself failed (a worker died or the run overran)",
}


def bound(text: str | None, *, base_ns: int | None = None) -> tuple[int | None, tuple | None]:
    """A --from/--to value -> (ns since the epoch, None) or (None, stream id); see timespec."""
    from replayer.source.timespec import parse_bound
    if text is None:
        return None, None
    text = str(text).strip()
    if text.isdigit():  # ns since the epoch
        return int(text), None
    return parse_bound(text, base_ns=base_ns)


def regex(text: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {text!r} ({exc})") from None


def header(text: str) -> tuple[str, str]:
    from replayer.engine.rewrite import parse_header
    try:
        return parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return v


def pid(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"a process id is at least 1, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-replay",
        description="Replay the requests of a captured range against a target deployment with "
        "Locust (a master and --workers worker processes), each captured connection on one "
        "keep-alive connection in recorded order; compare the answers with the recorded ones, "
        "write a report and turn it into a pass/fail exit code.",
        epilog=EXAMPLES + a.exit_codes_help(EXIT_HELP), formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add(p, "--source", required=True,
          help="where the records are: an exported file, an archive folder, a Redis URL (with "
          "--stream), or a Redis URL and an archive folder joined by a comma (read as one)")
    a.add(p, "--stream", default=None, help="stream name (records in rewind:{NAME}:http)")
    a.add(p, "--from", dest="from_", default=None,
          help="start of the capture-time window, inclusive: ISO-8601, now, -15m, "
          "@epoch-seconds, ns since the epoch; or a stream id (1732312345678-0: the first "
          "entry, inclusive)")
    a.add(p, "--to", default=None,
          help="end of the capture-time window, exclusive (same forms as --from; +10m: after "
          "--from); or a stream id: the last entry, inclusive")
    a.add(p, "--target", required=True, help="base URL of the deployment to replay against")
    a.add(p, "--mode", default="recorded", choices=["recorded", "rps", "max", "ramp"],
          help="recorded: at the recorded offsets / --speed (open loop); rps: --rps requests a "
          "second in recorded order; max: every connection as fast as it is answered; ramp: "
          "rising rates (--ramp-*) in recorded order until the --slo breaks")
    a.add(p, "--speed", type=positive, default=1.0, help="recorded mode: time runs this much faster")
    a.add(p, "--rps", type=positive, default=None, help="rps mode: requests a second, all workers")
    a.add(p, "--ramp-start", type=positive, default=50.0,
          help="ramp mode: requests a second of the first step")
    a.add(p, "--ramp-step", type=positive, default=50.0,
          help="ramp mode: requests a second added at each step")
    a.add(p, "--ramp-max", type=positive, default=1000.0,
          help="ramp mode: the highest rate tried (the ramp ends there if the SLO still holds)")
    a.add(p, "--step-duration", type=a.duration, default="30s",
          help="ramp mode: how long each rate is held")
    a.add(p, "--slo", default=None,
          help="ramp mode: what must hold at each step, e.g. 'p95<200ms,errors<1%%' "
          "(p50 p90 p95 p99 max in ms or s; errors in %% or a fraction)")
    a.add(p, "--workers", type=int, default=1, help="Locust worker processes")
    a.add(p, "--external-workers", type=int, default=None,
          help="start no workers: wait for this many rewind-replay-worker processes started "
          "elsewhere (Pods) to connect to --master-bind-host:--master-bind-port")
    a.add(p, "--master-bind-host", default=None,
          help="address the master listens on (default 127.0.0.1; 0.0.0.0 with --external-workers)")
    a.add(p, "--master-bind-port", type=a.port, default=None,
          help="port the master listens on (default any free port; 5557 with --external-workers)")
    a.add(p, "--connect-timeout", type=a.duration, default=None,
          help="how long to wait for every worker to connect (default 60s; 10m with "
          "--external-workers)")
    a.add(p, "--follow", action="store_true", default=False,
          help="shadow traffic: tail the live Redis stream from now (or --from) and send each "
          "new request to the target as it arrives, until --duration or Ctrl-C")
    a.add(p, "--loop", action="store_true", default=False,
          help="replay the range again and again (needs --duration)")
    a.add(p, "--duration", type=a.duration, default=None,
          help="stop sending after this long (30s, 10m)")
    a.add(p, "--host-header", default="target",
          help="Host header: 'target' (the target's host:port), 'keep' (as recorded), or a value")
    a.add(p, "--set-header", type=header, action="append", default=[],
          help="'Name: value' replacing the recorded header of that name (or added); repeatable")
    a.add(p, "--add-header", type=header, action="append", default=[],
          help="'Name: value' appended to every request; repeatable")
    a.add(p, "--drop-header", action="append", default=[],
          help="header name removed from every request; repeatable")
    a.add(p, "--method", default=None, help="only these methods, e.g. GET,HEAD")
    a.add(p, "--include", type=regex, action="append", default=[],
          help="only paths matching this regular expression; repeatable (any may match)")
    a.add(p, "--exclude", type=regex, action="append", default=[],
          help="skip paths matching this regular expression; repeatable")
    a.add(p, "--drop-if-header", action="append", default=[],
          help="skip requests carrying this header (e.g. a secret); repeatable")
    a.add(p, "--credentials", default=None,
          help="YAML/JSON file mapping masked tokens (rwd_...) or header names to real test "
          "values, put into each request before it is sent (see docs/replay.md)")
    a.add(p, "--ignore", action="append", default=[],
          help="JSON path left out of the body comparison: $.created_at, $.items[*].id, $..id")
    a.add(p, "--baseline", default=None,
          help="base URL of a known-good deployment: replay the range twice against it first; "
          "body fields that differ between those two runs are noise, ignored per endpoint when "
          "the target's answers are compared (listed in the report)")
    # correlation hook: flags of replayer/engine/correlation (docs/correlate.md)
    a.add(p, "--no-correlate", action="store_true", default=False,
          help="send recorded ids, tokens and ETags as recorded instead of the values the "
          "target's own answers made (correlation is on by default)")
    a.add(p, "--correlate-wait", type=a.duration, default="60s",
          help="how long a request waits for the answer that makes a value it carries; then "
          "it is sent as recorded and counted unresolved")
    a.add(p, "--shift-time", action="store_true", default=False,
          help="move capture-time timestamps in requests (ISO-8601, epoch s/ms, HTTP dates in "
          "headers, query, JSON, forms) by the replay's offset from the capture")
    a.add(p, "--jwt-key", default=None,
          help="file with the key the recorded JWTs were signed with (PEM private key or HMAC "
          "secret): tokens it verifies are re-signed with iat/nbf/exp moved by the offset")
    a.add(p, "--jwt-key-env", default=None,
          help="name of an environment variable holding that key (instead of --jwt-key)")
    a.add(p, "--report", default=None, help="folder for summary.json, report.html, junit.xml")
    a.add(p, "--thresholds", default=None, help="JSON file of limits that decide pass or fail")
    a.add(p, "--timeout", type=a.duration, default="30s", help="per request")
    a.add(p, "--progress-every", type=a.duration, default="5s", help="progress log interval")
    # live metrics and target health (issue 13): replayer.engine.live_metrics, replayer.watch
    a.add(p, "--metrics-port", type=a.port, default=0,
          help="serve the replay's Prometheus metrics (rewind_replay_*) on this port while it "
          "runs (0: off)")
    a.add(p, "--metrics-addr", default="0.0.0.0", help="address for the metrics server")
    a.add(p, "--metrics-linger", type=a.duration, default="15s",
          help="keep serving the metrics this long after the run, so the last scrape sees the "
          "totals (set it to your scrape interval)")
    a.add(p, "--watch-prometheus", default=None,
          help="Prometheus base URL to read the target's health from (with --watch)")
    a.add(p, "--watch", action="append", default=[],
          help="PromQL query sampled every --watch-interval during the run, e.g. "
          "'process_resident_memory_bytes{job=\"api\"}'; repeatable")
    a.add(p, "--watch-pid", type=pid, action="append", default=[],
          help="pid of a local target whose RSS (/proc/PID/status) is sampled; repeatable")
    a.add(p, "--watch-interval", type=a.duration, default="10s",
          help="how often the watched series are sampled")
    logs.add_arguments(p)
    return p
