"""``rewind-replay``: replay a captured range against a target with Locust, report, and judge."""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sidecar.common import cli_args as a

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
  rewind-replay --source capture.jsonl --target http://c:8080 --mode ramp --ramp-start 100 \
      --ramp-step 100 --ramp-max 2000 --step-duration 30s --slo 'p95<200ms,errors<1%' --report out/

  # shadow traffic: mirror what reaches the stream from now on, until Ctrl-C
  rewind-replay --source redis://redis:6379/0 --stream orders --follow --target http://c:8080

  # learn noisy fields from two runs against the current release, then judge the candidate
  rewind-replay --source capture.jsonl --target http://c:8080 --baseline http://prod:8080 \
      --thresholds thresholds.json --report out/

  # workers started elsewhere: the master waits for 4 `rewind-replay-worker --master-host M`
  rewind-replay --source capture.jsonl --target http://c:8080 --external-workers 4 \
      --master-bind-port 5557 --from 1732312345678-0 --to 1732312999999-0

thresholds file (JSON; max_ or min_ with p50_ms p90_ms p95_ms p99_ms max_ms error_rate
status_mismatch_rate body_mismatch_rate rps lag_p99_ms; see docs/replay.md):
  {"max_p95_ms": 200, "max_error_rate": 0.01, "max_status_mismatch_rate": 0.01}

exit codes: 0 replayed (and thresholds passed; ramp: at least the first step held the SLO),
1 thresholds failed (ramp: even the first step broke the SLO), 2 bad arguments or input
(empty range, bad record or schema version, malformed thresholds file), 3 target unreachable,
4 source unreachable (Redis), 5 the run itself failed (a worker died or the run overran)
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TARGET, EXIT_SOURCE, EXIT_RUN = 0, 1, 2, 3, 4, 5


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-replay",
        description="Replay the requests of a captured range against a target deployment with "
        "Locust (a master and --workers worker processes), each captured connection on one "
        "keep-alive connection in recorded order; compare the answers with the recorded ones, "
        "write a report and turn it into a pass/fail exit code.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add(p, "--source", required=True,
          help="where the records are: an exported file, an archive folder, a Redis URL (with "
          "--stream), or a Redis URL and an archive folder joined by a comma (read as one)")
    a.add(p, "--stream", default=None, help="stream name (records in rewind:{NAME}:http)")
    a.add(p, "--from", dest="from_", default=None,
          help="first capture time: ISO-8601, now, -15m, @epoch-seconds, ns since the epoch, "
          "or a stream id (1732312345678-0: first entry id, inclusive)")
    a.add(p, "--to", default=None,
          help="last capture time or stream id, inclusive (same forms as --from; +10m: after --from)")
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
    a.add(p, "--report", default=None, help="folder for summary.json, report.html, junit.xml")
    a.add(p, "--thresholds", default=None, help="JSON file of limits that decide pass or fail")
    a.add(p, "--timeout", type=a.duration, default="30s", help="per request")
    a.add(p, "--progress-every", type=a.duration, default="5s", help="progress log interval")
    a.add(p, "--log-level", default="info", choices=["debug", "info", "warning", "error"],
          help="log level")
    a.add(p, "--log-format", default="auto", choices=["auto", "json", "console"],
          help="log format (auto: console on a terminal, JSON otherwise)")
    return p


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, dict | None]:
    from replayer.judge.compare import parse_path
    from replayer.judge.verdict import ThresholdsError, load_thresholds

    from replayer.source.timespec import join_relative_times

    p = build_parser()
    args = p.parse_args(join_relative_times(sys.argv[1:] if argv is None else list(argv)))
    for name in ("loop",):  # REWIND_LOOP=1 arrives as a string
        if isinstance(getattr(args, name), str):
            setattr(args, name, getattr(args, name).lower() in ("1", "true", "yes"))
    u = urlsplit(args.target)
    if u.scheme not in ("http", "https") or not u.hostname:
        p.error(f"--target must be an http:// or https:// URL, got {args.target!r}")
    if u.path not in ("", "/") or u.query:
        p.error("--target is a base URL without a path (recorded targets are sent as they are)")
    if args.baseline:
        b = urlsplit(args.baseline)
        if b.scheme not in ("http", "https") or not b.hostname or b.path not in ("", "/"):
            p.error(f"--baseline must be a base URL like http://host:8080, got {args.baseline!r}")
        if args.follow or args.mode == "ramp" or args.external_workers:
            p.error("--baseline replays the range twice more: it does not go with --follow, "
                    "--mode ramp or --external-workers")
    if args.mode == "rps" and not args.rps:
        p.error("--mode rps needs --rps N")
    args.slo_objectives = None
    if args.mode == "ramp":
        from replayer.engine.slo import SloError, parse_slo
        if not args.slo:
            p.error("--mode ramp needs --slo, e.g. --slo 'p95<200ms,errors<1%'")
        try:
            args.slo_objectives = parse_slo(args.slo)
        except SloError as exc:
            print(f"rewind-replay: --slo: {exc}", file=sys.stderr)  # one line, exit 2
            sys.exit(EXIT_USAGE)
        if args.ramp_max < args.ramp_start:
            p.error("--ramp-max is below --ramp-start")
        if args.loop or args.duration or args.thresholds:
            p.error("--mode ramp sets its own length (--ramp-* and --step-duration) and judges "
                    "with --slo: leave out --loop, --duration and --thresholds")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.external_workers is not None:
        if args.external_workers < 1:
            p.error("--external-workers must be at least 1")
        args.workers = args.external_workers
    args.master_bind_host = args.master_bind_host or (
        "0.0.0.0" if args.external_workers else "127.0.0.1")
    if args.master_bind_port is None:
        args.master_bind_port = 5557 if args.external_workers else 0
    if args.connect_timeout is None:
        args.connect_timeout = 600.0 if args.external_workers else 60.0
    if isinstance(args.follow, str):  # REWIND_FOLLOW=1 arrives as a string
        args.follow = args.follow.lower() in ("1", "true", "yes")
    if args.follow:
        if not args.source.startswith(("redis://", "rediss://", "unix://")) or "," in args.source:
            p.error("--follow tails a Redis stream: give --source as a Redis URL (with --stream)")
        if args.mode != "recorded" or args.loop or args.to is not None:
            p.error("--follow sends each request as it arrives: leave out --mode, --loop and "
                    "--to (end it with --duration or Ctrl-C)")
    if args.loop and not args.duration:
        p.error("--loop needs --duration (how long to keep going)")
    from replayer.source.timespec import TimeSpecError
    try:
        args.from_ns, args.from_id = bound(args.from_)
        args.to_ns, args.to_id = bound(args.to, base_ns=args.from_ns)
    except TimeSpecError as exc:
        p.error(f"--from/--to: {exc}")
    if (args.from_ns is not None and args.to_ns is not None and args.from_ns > args.to_ns) or (
            args.from_id is not None and args.to_id is not None and args.from_id > args.to_id):
        p.error("--from is after --to")
    for path in args.ignore:
        try:
            parse_path(path)
        except ValueError as exc:
            p.error(f"--ignore: {exc}")
    thresholds = None
    if args.thresholds:
        try:
            thresholds = load_thresholds(args.thresholds)
        except ThresholdsError as exc:
            p.error(f"--thresholds: {exc}")
    if args.method:
        args.method = frozenset(m.strip().upper() for m in args.method.split(",") if m.strip())
    args.creds = None
    if args.credentials:
        from replayer.engine.credentials import CredentialsError, load_credentials
        try:
            args.creds = load_credentials(args.credentials)
        except CredentialsError as exc:
            print(f"rewind-replay: --credentials: {exc}", file=sys.stderr)  # one line, exit 2
            sys.exit(EXIT_USAGE)
    return args, thresholds


def main(argv: list[str] | None = None) -> int:
    args, thresholds = parse(argv)
    from gevent import monkey

    monkey.patch_all()  # before redis/ssl are imported: Locust runs on gevent

    import structlog

    from replayer.source.feed import FeedError, Window, open_feed
    from replayer.engine.plan import Schedule, build_plan
    from replayer.engine.rewrite import Rules
    from sidecar.common import logs

    logs.configure(args.log_level, json={"auto": None, "json": True, "console": False}[args.log_format])
    log = structlog.get_logger("rewind.replay")

    u = urlsplit(args.target)
    host = {"target": u.netloc, "keep": None}.get(args.host_header, args.host_header)
    rules = Rules(methods=args.method, include=args.include, exclude=args.exclude,
                  drop_if_header=frozenset(h.lower() for h in args.drop_if_header),
                  drop_headers=frozenset(h.lower() for h in args.drop_header),
                  set_headers=args.set_header, add_headers=args.add_header, host=host,
                  credentials=args.creds)
    records, follower, ramp = [], None, None
    if args.follow:
        import redis

        from replayer.engine.follow import open_follower
        from replayer.engine.plan import Plan
        try:
            follower = open_follower(args.source, args.stream, rules, args.workers,
                                     from_ns=args.from_ns, from_id=args.from_id,
                                     log=log.warning)
        except redis.RedisError as exc:
            print(f"rewind-replay: cannot read the stream from Redis: {exc}", file=sys.stderr)
            return EXIT_SOURCE
        except ValueError as exc:
            print(f"rewind-replay: {exc}", file=sys.stderr)
            return EXIT_USAGE
        plan = Plan([[] for _ in range(args.workers)])
    try:
        window = Window(args.from_ns, args.to_ns, args.from_id, args.to_id)
        records = [] if follower else open_feed(args.source, stream=args.stream, window=window)
    except FeedError as exc:
        source_down = "cannot read" in str(exc) and "Redis" in str(exc)
        print(f"rewind-replay: {exc}", file=sys.stderr)
        return EXIT_SOURCE if source_down else EXIT_USAGE
    if args.mode == "ramp":
        from replayer.engine.ramp import Ramp
        ramp = Ramp(args.ramp_start, args.ramp_step, args.ramp_max, args.step_duration)
        # the plan's own due times are only its order here: workers take them from the ramp
        schedule = Schedule("rps", rate=args.ramp_start)
    else:
        schedule = Schedule(args.mode, args.speed, args.rps or 0.0)
    if not follower:
        plan = build_plan(records, rules, schedule, args.workers)
    if plan.steps == 0 and not follower:
        print(f"rewind-replay: nothing to replay: the range holds {len(records)} records"
              + (f", all skipped ({_fmt(plan.skipped)})" if plan.skipped else "")
              + "; check --source, --stream, --from/--to and the filters", file=sys.stderr)
        return EXIT_USAGE
    for url in (args.target, args.baseline) if args.baseline else (args.target,):
        t = urlsplit(url)
        try:
            socket.create_connection(
                (t.hostname, t.port or (443 if t.scheme == "https" else 80)), timeout=5).close()
        except OSError as exc:
            print(f"rewind-replay: target {url} is unreachable: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_TARGET
    if follower:
        log.info("replay.follow", stream=args.stream, after_id=follower.after_id,
                 workers=args.workers, duration_s=args.duration)
    else:
        log.info("replay.plan", records=len(records), steps=plan.steps,
                 connections=plan.connections, skipped=plan.skipped or None,
                 workers=args.workers, mode=args.mode, span_s=round(plan.span, 3))

    from replayer.engine.master import RunConfig, RunError, run_plan
    monitor = None
    if ramp is not None:
        from replayer.engine.ramp import RampMonitor
        monitor = RampMonitor(ramp, args.slo_objectives, log=log.info)
        log.info("replay.ramp", rates=list(ramp.rates), step_s=ramp.step_s, slo=args.slo,
                 planned=ramp.total, judge_after_s=round(monitor.grace, 2))
    with tempfile.TemporaryDirectory(prefix="rewind-replay-") as work:
        cfg = RunConfig(target=args.target, workdir=work, ignore=args.ignore,
                        timeout=args.timeout, loop=args.loop or ramp is not None,
                        duration=ramp.duration if ramp else args.duration,
                        progress_every=args.progress_every, ramp=ramp,
                        monitor=monitor.tick if monitor else None, follow=follower,
                        external=args.external_workers is not None,
                        bind_host=args.master_bind_host, bind_port=args.master_bind_port,
                        connect_timeout=args.connect_timeout,
                        stop_requested=_stop_on_signals(log), log=log.info)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        progress = _progress_printer(log, args.log_format)
        noise = None
        try:
            if args.baseline:
                from dataclasses import replace

                from replayer.judge.noise import learn_from_baseline
                noise = learn_from_baseline(args.baseline, lambda target: run_plan(plan, replace(
                    cfg, target=target, keep_bodies=True), progress=progress).results, log.info)
                cfg.noise = noise.paths
            out = run_plan(plan, cfg, progress=progress)
            if getattr(progress, "drew", False):
                sys.stderr.write("\n")
        except RunError as exc:
            log.error("replay.failed", error=str(exc))
            return EXIT_RUN
    return finish(args, thresholds, plan, out, records, started, log, ramp, monitor, follower,
                  noise)


def _progress_printer(log, log_format: str):
    """replay.progress log lines; on a terminal (console logs) one line redrawn in place."""
    if log_format == "json" or not sys.stderr.isatty():
        return lambda snap: log.info("replay.progress", **snap)

    def redraw(snap: dict) -> None:
        lag = snap["lag_p99_ms"]
        line = (f"{snap['elapsed_s']:>7.1f} s  sent {snap['sent']:>9,}  {snap['rps']:>8,.1f} req/s  "
                f"errors {snap['errors']:,}  lag p99 {'-' if lag is None else f'{lag:.1f} ms'}")
        if "ramp_step" in snap:
            line += f"  ramp step {snap['ramp_step']} ({snap['ramp_rps']:g}/s)"
        sys.stderr.write("\r\x1b[K" + line)
        sys.stderr.flush()
        redraw.drew = True  # the caller ends the line before logging on
    return redraw


def _stop_on_signals(log):
    """SIGINT/SIGTERM end the run in order (report written); returns 'was one received?'."""
    import signal

    import gevent

    got: list[int] = []

    def on_signal(signum: int) -> None:
        if not got:
            log.warning("replay.stopping", signal=signal.Signals(signum).name)
        got.append(signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, on_signal, sig)
    return lambda: bool(got)


def finish(args, thresholds, plan, out, records, started, log, ramp=None, monitor=None,
           follower=None, noise=None) -> int:
    from replayer.judge.results import summarize
    from replayer.judge.verdict import evaluate

    recorded_status = follower.recorded_status if follower else Counter(
        s.rec_status for shard in plan.shards for s in shard)
    summary = summarize(out.results, mode=args.mode, recorded_status=recorded_status)
    summary["run"] = {"target": args.target, "source": args.source, "stream": args.stream,
                      "mode": args.mode, "speed": args.speed, "rate": args.rps,
                      "workers": args.workers, "loop": args.loop, "duration": args.duration,
                      "follow": args.follow, "baseline": args.baseline,
                      "started_at": started, "wall_s": round(out.wall_s, 3),
                      "ignore": args.ignore}
    summary["plan"] = {"records": len(records), "steps": plan.steps,
                       "connections": plan.connections, "skipped": plan.skipped,
                       "span_s": round(plan.span, 3)}
    if follower:
        summary["plan"] = {"records": follower.records, "steps": follower.steps,
                           "connections": follower.connections,
                           "skipped": dict(follower.skipped), "span_s": None}
        summary["follow"] = {"started_after_id": follower.start_after, "last_id": follower.after_id,
                             "redis_errors": follower.redis_errors,
                             "lag_is": "send time - arrival at the replayer"}
    if args.creds is not None:  # masked tokens swapped for real values (--credentials)
        summary["plan"]["credentials"] = args.creds.summary()
        log.info("replay.credentials", **args.creds.summary())
    if noise is not None:
        summary["noise"] = noise.to_json(args.baseline)
    code = EXIT_OK
    if thresholds is not None:
        checks = evaluate(thresholds, summary)
        passed = all(c.ok for c in checks)
        summary["verdict"] = {"passed": passed, "checks": [
            {"metric": c.metric, "bound": c.bound, "limit": c.limit, "scope": c.scope,
             "value": c.value, "ok": c.ok, "line": c.line()} for c in checks]}
        for c in checks:
            if not c.ok:
                log.warning("replay.threshold_failed", line=c.line())
        code = EXIT_OK if passed else EXIT_FAILED
    if ramp is not None:
        from replayer.engine.ramp import step_table
        monitor.finish(out.results, out.wall_s)
        broke = next((v for v in monitor.verdicts if not v.held), None)
        summary["ramp"] = {
            **ramp.to_json(), "slo": args.slo,
            "slo_limits": {o.metric: o.limit for o in args.slo_objectives},  # ms; errors: share
            "capacity_rps": monitor.capacity,
            "broken_at_rps": broke.rate if broke else None,
            "broken_by": broke.failing if broke else [],
            "reached_max": broke is None and len(monitor.verdicts) == len(ramp.rates),
            "judge_after_s": round(monitor.grace, 3),
            "steps": step_table(out.results, ramp, monitor)}
        summary["run"]["rate"] = None
        log.info("replay.ramp_done", capacity_rps=monitor.capacity,
                 broken_at_rps=broke.rate if broke else None,
                 broken_by=broke.failing if broke else None)
        code = EXIT_OK if monitor.capacity is not None else EXIT_FAILED
    if args.report:
        from replayer.judge.report import write_report
        write_report(args.report, summary, out.stats)
    t = summary["totals"]
    log.info("replay.done", sent=t["sent"], errors=t["errors"], rps=t["rps"],
             p95_ms=summary["latency_ms"]["p95"],
             lag_p99_ms=(summary["lag_ms"] or {}).get("p99"),
             status_mismatch_rate=t["status_mismatch_rate"],
             body_mismatch_rate=t["body_mismatch_rate"],
             verdict=None if thresholds is None else ("pass" if code == EXIT_OK else "fail"),
             report=os.path.abspath(args.report) if args.report else None)
    return code


def _fmt(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
