"""``rewind-replay``'s arguments, checked together and turned into one ``Options``: ``parse(argv)``.

Every check that needs no I/O beyond reading the thresholds and credentials files happens here,
before any work starts; a bad combination exits 2 with a line that says what to change.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from replayer.engine.credentials import Credentials, CredentialsError, load_credentials
from replayer.engine.plan import Schedule
from replayer.engine.ramp import Ramp
from replayer.engine.rewrite import Rules
from replayer.engine.slo import Objective, SloError, parse_slo
from replayer.judge.health import HEALTH_LIMITS
from replayer.judge.verdict import ThresholdsError, load_thresholds
from replayer.replay.parser import bound, build_parser
from replayer.source.timespec import TimeSpecError, join_relative_times
from replayer.source.window import Window
from replayer.watch import WatchSpec
from sidecar.common import cli_args as a
from sidecar.contract.exit_codes import ReplayExit
from sidecar.contract.jsonpath import parse_path

__all__ = ["Options", "parse"]


@dataclass(slots=True)
class Options:
    """One replay, as asked for on the command line (after defaults and checks)."""

    source: str
    stream: str | None
    window: Window  # --from/--to
    target: str
    rules: Rules  # filters and rewrites (with the credentials)
    mode: str  # recorded | rps | max | ramp
    schedule: Schedule  # ramp: rps at the first rate (its due times are only an order)
    speed: float = 1.0
    rps: float | None = None
    ramp: Ramp | None = None
    slo: str | None = None  # as written
    objectives: list[Objective] | None = None  # the SLO, parsed
    workers: int = 1
    external: bool = False  # --external-workers: workers started elsewhere
    bind_host: str = "127.0.0.1"
    bind_port: int = 0
    connect_timeout: float = 60.0
    follow: bool = False
    loop: bool = False
    duration: float | None = None
    ignore: list[str] = field(default_factory=list)
    baseline: str | None = None
    credentials: Credentials | None = None
    report: str | None = None
    thresholds: dict | None = None
    timeout: float = 30.0
    progress_every: float = 5.0
    log_level: str = "info"
    log_format: str = "auto"
    # correlation hook (replayer/engine/correlation): on unless --no-correlate
    correlate: bool = True
    correlate_wait: float = 60.0
    shift_time: bool = False
    jwt_key_file: str | None = None
    jwt_key_env: str | None = None
    # live metrics and target health (issue 13)
    metrics_port: int = 0  # 0: no metrics server
    metrics_addr: str = "0.0.0.0"
    metrics_linger: float = 15.0
    watch: WatchSpec | None = None  # None: nothing watched


def parse(argv: list[str] | None) -> Options:
    """The Options of ``argv`` (``sys.argv[1:]`` when None); exits 2 with one line on a bad one."""
    p = build_parser()
    args = p.parse_args(join_relative_times(sys.argv[1:] if argv is None else list(argv)))
    try:
        follow, loop = a.boolean(args.follow), a.boolean(args.loop)  # REWIND_FOLLOW=1: a string
    except argparse.ArgumentTypeError as exc:
        p.error(f"--follow/--loop (REWIND_FOLLOW/REWIND_LOOP): {exc}")
    _check_urls(p, args, follow)
    objectives = _check_mode(p, args, loop)
    external = args.external_workers is not None
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if external and args.external_workers < 1:
        p.error("--external-workers must be at least 1")
    if follow:
        if not args.source.startswith(("redis://", "rediss://", "unix://")) or "," in args.source:
            p.error("--follow tails a Redis stream: give --source as a Redis URL (with --stream)")
        if args.mode != "recorded" or loop or args.to is not None:
            p.error("--follow sends each request as it arrives: leave out --mode, --loop and "
                    "--to (end it with --duration or Ctrl-C)")
    if loop and not args.duration:
        p.error("--loop needs --duration (how long to keep going)")
    window = _window(p, args.from_, args.to)
    for path in args.ignore:
        try:
            parse_path(path)
        except ValueError as exc:
            p.error(f"--ignore: {exc}")
    correlate = _check_correlation(p, args)
    thresholds = None
    if args.thresholds:
        try:
            thresholds = load_thresholds(args.thresholds)
        except ThresholdsError as exc:
            p.error(f"--thresholds: {exc}")
    creds = None
    if args.credentials:
        try:
            creds = load_credentials(args.credentials)
        except CredentialsError as exc:
            _usage(f"--credentials: {exc}")
    ramp = None
    if args.mode == "ramp":
        ramp = Ramp(args.ramp_start, args.ramp_step, args.ramp_max, args.step_duration)
        schedule = Schedule("rps", rate=args.ramp_start)
    else:
        schedule = Schedule(args.mode, args.speed, args.rps or 0.0)
    watch = _watch(p, args, thresholds)  # target health (issue 13)
    return Options(
        source=args.source, stream=args.stream, window=window,
        target=args.target, rules=_rules(args, creds), mode=args.mode, schedule=schedule,
        speed=args.speed, rps=args.rps, ramp=ramp, slo=args.slo, objectives=objectives,
        workers=args.external_workers if external else args.workers, external=external,
        bind_host=args.master_bind_host or ("0.0.0.0" if external else "127.0.0.1"),
        bind_port=(5557 if external else 0) if args.master_bind_port is None
        else args.master_bind_port,
        connect_timeout=(600.0 if external else 60.0) if args.connect_timeout is None
        else args.connect_timeout,
        follow=follow, loop=loop, duration=ramp.duration if ramp else args.duration,
        ignore=args.ignore, baseline=args.baseline, credentials=creds, report=args.report,
        thresholds=thresholds, timeout=args.timeout, progress_every=args.progress_every,
        log_level=args.log_level, log_format=args.log_format, correlate=correlate,
        correlate_wait=args.correlate_wait, shift_time=a.boolean(args.shift_time),
        jwt_key_file=args.jwt_key, jwt_key_env=args.jwt_key_env,
        metrics_port=args.metrics_port, metrics_addr=args.metrics_addr,
        metrics_linger=args.metrics_linger, watch=watch)


def _watch(p: argparse.ArgumentParser, args, thresholds: dict | None) -> WatchSpec | None:
    """--watch-prometheus/--watch/--watch-pid checked together (target health, issue 13)."""
    if args.watch and not args.watch_prometheus:
        p.error("--watch QUERY needs --watch-prometheus URL (the Prometheus to ask)")
    if args.watch_prometheus and not args.watch:
        p.error("--watch-prometheus needs at least one --watch QUERY")
    if args.watch_prometheus and urlsplit(args.watch_prometheus).scheme not in ("http", "https"):
        p.error(f"--watch-prometheus: expected http(s)://host:port, got {args.watch_prometheus!r}")
    for pid in args.watch_pid:
        if not os.path.exists(f"/proc/{pid}"):
            p.error(f"--watch-pid {pid}: no such process on this machine")
    if args.watch_interval <= 0:
        p.error("--watch-interval must be more than 0")
    spec = WatchSpec(prometheus=args.watch_prometheus, queries=tuple(args.watch),
                     pids=tuple(args.watch_pid), interval=args.watch_interval)
    if not spec.any and thresholds and any(k in thresholds for k in HEALTH_LIMITS):
        p.error(f"--thresholds: {', '.join(k for k in HEALTH_LIMITS if k in thresholds)} needs "
                "something watched: --watch-pid PID or --watch-prometheus URL --watch QUERY")
    return spec if spec.any else None


def _check_correlation(p: argparse.ArgumentParser, args) -> bool:
    """Correlation flags (correlation hook); the key is read here so a bad one fails first."""
    from replayer.engine.correlation.setup import JwtKeyError, read_jwt_key

    if args.jwt_key and args.jwt_key_env:
        p.error("give the JWT key once: --jwt-key FILE or --jwt-key-env NAME")
    try:
        read_jwt_key(args.jwt_key, args.jwt_key_env)
    except JwtKeyError as exc:
        _usage(str(exc))
    return not a.boolean(args.no_correlate)


def _usage(line: str) -> None:
    print(f"rewind-replay: {line}", file=sys.stderr)  # one line, exit 2
    sys.exit(ReplayExit.USAGE)


def _check_urls(p: argparse.ArgumentParser, args, follow: bool) -> None:
    u = urlsplit(args.target)
    if u.scheme not in ("http", "https") or not u.hostname:
        p.error(f"--target must be an http:// or https:// URL, got {args.target!r}")
    if u.path not in ("", "/") or u.query:
        p.error("--target is a base URL without a path (recorded targets are sent as they are)")
    if args.baseline:
        b = urlsplit(args.baseline)
        if b.scheme not in ("http", "https") or not b.hostname or b.path not in ("", "/"):
            p.error(f"--baseline must be a base URL like http://host:8080, got {args.baseline!r}")
        if follow or args.mode == "ramp" or args.external_workers:
            p.error("--baseline replays the range twice more: it does not go with --follow, "
                    "--mode ramp or --external-workers")


def _check_mode(p: argparse.ArgumentParser, args, loop: bool) -> list[Objective] | None:
    """Mode flags that go together; the parsed SLO in ramp mode."""
    if args.mode == "rps" and not args.rps:
        p.error("--mode rps needs --rps N")
    if args.mode != "ramp":
        return None
    if not args.slo:
        p.error("--mode ramp needs --slo, e.g. --slo 'p95<200ms,errors<1%'")
    try:
        objectives = parse_slo(args.slo)
    except SloError as exc:
        _usage(f"--slo: {exc}")
    if args.ramp_max < args.ramp_start:
        p.error("--ramp-max is below --ramp-start")
    if loop or args.duration or args.thresholds:
        p.error("--mode ramp sets its own length (--ramp-* and --step-duration) and judges "
                "with --slo: leave out --loop, --duration and --thresholds")
    return objectives


def _window(p: argparse.ArgumentParser, from_: str | None, to: str | None) -> Window:
    try:
        from_ns, from_id = bound(from_)
        to_ns, to_id = bound(to, base_ns=from_ns)
    except TimeSpecError as exc:
        p.error(f"--from/--to: {exc}")
    if (from_ns is not None and to_ns is not None and from_ns > to_ns) or (
            from_id is not None and to_id is not None and from_id > to_id):
        p.error("--from is after --to")
    return Window(start_ns=from_ns, end_ns=to_ns, start_id=from_id, end_id=to_id)


def _rules(args, creds: Credentials | None) -> Rules:
    methods = None
    if args.method:
        methods = frozenset(m.strip().upper() for m in args.method.split(",") if m.strip())
    host = {"target": urlsplit(args.target).netloc, "keep": None}.get(args.host_header,
                                                                      args.host_header)
    return Rules(methods=methods, include=args.include, exclude=args.exclude,
                 drop_if_header=frozenset(h.lower() for h in args.drop_if_header),
                 drop_headers=frozenset(h.lower() for h in args.drop_header),
                 set_headers=args.set_header, add_headers=args.add_header, host=host,
                 credentials=creds)
