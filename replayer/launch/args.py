"""``rewind-launch``'s command line: its own flags, and the rewind-replay flags it passes on.

Every flag rewind-launch does not know is a rewind-replay flag for the master (``--source``,
``--stream``, ``--from/--to``, ``--mode``, ``--speed``/``--rps``, ``--ramp-*``/``--slo``,
rewrites and filters, ``--ignore``...). They are checked here by rewind-replay's own parser
before anything is created, so a typo exits 2 at once instead of failing in a Pod. Relative
times (``--from=-15m``) are turned into absolute ones now, not when the Pod starts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from replayer.launch.manifests import METRICS_PORT, RUN_ID
from replayer.replay.parser import EXIT_HELP as REPLAY_EXIT_HELP
from sidecar.common import cli_args as a
from sidecar.common import logs
from sidecar.contract.exit_codes import LaunchExit

__all__ = ["build_parser", "parse"]

EXIT_HELP = {**REPLAY_EXIT_HELP, LaunchExit.NO_VERDICT: (
    "no verdict: the cluster refused or could not be reached, a Pod could not start, the master "
    "Job ended without an exit code, --timeout passed, rewind-launch was interrupted, or "
    "--report was asked for and the report did not come back")}
# set by rewind-launch itself, so not accepted among the passed-on flags
OWN = {"--workers", "--external-workers", "--master-bind-host", "--master-bind-port", "--report",
       "--thresholds", "--credentials", "--log-level", "--log-format", "--timeout",
       "--metrics-port"}

EXAMPLES = """\
examples:
  # the last hour of a stream against a candidate, 4 worker Pods, report and verdict back here
  rewind-launch --namespace replay --workers 4 --report out/ --thresholds thresholds.json \\
      --source redis://redis.rewind:6379/0 --stream orders --from=-60m \\
      --target http://candidate.shop:8080 --ignore '$..id'

  # what would be created, as YAML (nothing is sent)
  rewind-launch --dry-run --run-id try-1 --source redis://r:6379/0 --stream orders \\
      --target http://candidate:8080 --mode ramp --slo 'p95<200ms' --ramp-max 2000

  # remove what a run left (after a killed launcher; Jenkins does this in post { always })
  rewind-launch --namespace replay --delete jenkins-42

Flags rewind-launch does not know go to rewind-replay in the master Pod (see rewind-replay
--help); write a value that starts with '-' as --from=-15m. The replay's per-request --timeout
is --request-timeout here (--timeout is how long rewind-launch waits).

"""


def _default_image() -> str:
    try:
        return f"rewind/replayer:{version('rewind')}"
    except PackageNotFoundError:
        return "rewind/replayer:latest"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-launch", allow_abbrev=False,
        description="Run a distributed replay in Kubernetes: a master Job (rewind-replay), an\n"
        "Indexed Job of N workers and the Service between them, all labelled with one run id;\n"
        "wait, show progress, bring the report back, exit with the replay's verdict, and\n"
        "delete everything it created (also when interrupted). docs/launch.md has the details.",
        epilog=EXAMPLES + a.exit_codes_help(
            EXIT_HELP, title="exit codes (0-5 are rewind-replay's, from the master Pod)"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add(p, "--namespace", default=None,
          help="namespace of the run (default: the kubeconfig context's, else default)")
    a.add(p, "--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, "
          "~/.kube/config, or the Pod's service account when in a cluster)")
    a.add(p, "--context", default=None, help="kubeconfig context")
    a.add(p, "--image", default=_default_image(), help="replayer image (rewind-launch-master, "
          "rewind-replay-worker)")
    a.add(p, "--image-pull-policy", default="IfNotPresent", choices=["Always", "IfNotPresent", "Never"],
          help="image pull policy")
    a.add(p, "--image-pull-secret", action="append", default=[], help="image pull secret; repeatable")
    a.add(p, "--service-account", default=None, help="service account of the Pods")
    a.add(p, "--workers", type=int, default=1, help="worker Pods (completions of the Indexed Job)")
    a.add(p, "--worker-cpu", default=None, help="CPU request of each worker Pod, e.g. 1 or 500m")
    a.add(p, "--worker-memory", default=None, help="memory request of each worker Pod, e.g. 512Mi")
    a.add(p, "--run-id", default=None, help="run id (label rewind.dev/run-id, object names); "
          "default: launch time and a random suffix")
    # not REWIND_TIMEOUT: that is rewind-replay's per-request timeout
    p.add_argument("--timeout", type=a.duration, default=os.environ.get("REWIND_LAUNCH_TIMEOUT", "1h"),
                   help="how long to wait for the verdict (also the Jobs' activeDeadlineSeconds) "
                   "[env REWIND_LAUNCH_TIMEOUT; default 1h]")
    a.add(p, "--ttl", type=a.duration, default="1h",
          help="ttlSecondsAfterFinished of the Jobs: the backstop clean-up (at least 60s)")
    a.add(p, "--poll", type=a.duration, default="2s", help="how often to look at the Pods")
    a.add(p, "--report", default=None, help="folder here for the report (summary.json, "
          "report.html, junit.xml, locust_stats.csv)")
    a.add(p, "--report-claim", default=None,
          help="PersistentVolumeClaim for the master's /reports (report kept at /reports/RUN)")
    a.add(p, "--thresholds", default=None, help="thresholds JSON file (sent as a ConfigMap)")
    a.add(p, "--credentials", default=None, help="rewind-replay's credentials file (sent as a "
          "Secret, mounted read-only in the master Pod)")
    a.add(p, "--request-timeout", type=a.duration, default=None,
          help="rewind-replay's per-request --timeout")
    a.add(p, "--metrics-port", type=a.port,
          default=METRICS_PORT,
          help="the master's live replay metrics (rewind-replay --metrics-port), with a Service "
          "port and prometheus.io annotations for scraping while the run goes on; 0: off")
    a.add(p, "--keep", action="store_true", default=False,
          help="leave the objects in place at the end (the TTL still removes the Jobs)")
    a.add(p, "--dry-run", action="store_true", default=False,
          help="print the manifests as YAML and exit 0; nothing is sent")
    a.add(p, "--delete", default=None, metavar="RUN_ID",
          help="delete the Jobs, Service, ConfigMap and Secret of this run id, then exit")
    logs.add_arguments(p)
    return p


@contextmanager
def _without_replay_env():
    """rewind-replay's REWIND_* defaults of this machine do not reach the Pod: keep them out
    of the check too."""
    from replayer.replay.parser import build_parser as replay_parser
    from sidecar.common.cli_args import env_name
    keys = {env_name(s) for act in replay_parser()._actions for s in act.option_strings
            if s.startswith("--")}
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in keys}
    try:
        yield
    finally:
        os.environ.update(saved)


def _absolute_times(argv: list[str]) -> list[str]:
    """``--from=-15m``, ``--to now``: relative to now, so fixed now (as ns since the epoch)."""
    from replayer.source.timespec import TimeSpecError, parse_time
    out, it = [], iter(argv)
    for tok in it:
        flag, eq, value = tok.partition("=")
        if flag in ("--from", "--to"):
            value = value if eq else next(it, "")
            if value.strip().lower() == "now" or value.strip().startswith("-"):
                try:
                    value = str(parse_time(value))
                except TimeSpecError:
                    pass  # left as it is: rewind-replay's check names the problem
            out.append(f"{flag}={value}")
        else:
            out.append(tok)
    return out


def parse(argv: list[str] | None):
    """(launcher args, rewind-replay argv for the master, {"thresholds"/"credentials": text})."""
    from replayer.source.timespec import join_relative_times

    p = build_parser()
    args, rest = p.parse_known_args(join_relative_times(sys.argv[1:] if argv is None else list(argv)))
    try:  # REWIND_KEEP=1 arrives as a string
        args.keep, args.dry_run = a.boolean(args.keep), a.boolean(args.dry_run)
    except argparse.ArgumentTypeError as exc:
        p.error(f"--keep/--dry-run (REWIND_KEEP/REWIND_DRY_RUN): {exc}")
    if args.delete is not None:
        if not RUN_ID.match(args.delete):
            p.error(f"--delete: not a run id: {args.delete!r}")
        return args, [], {}
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.timeout < 1 or args.poll <= 0:
        p.error("--timeout must be at least 1s and --poll positive")
    if args.ttl < 60:
        p.error("--ttl must be at least 60s: the report is read from the master's log after its "
                "Job finished, before the TTL removes it")
    args.run_id = args.run_id or (time.strftime("%Y%m%d-%H%M%S", time.gmtime())
                                  + "-" + secrets.token_hex(2))
    if not RUN_ID.match(args.run_id):
        p.error(f"--run-id must be lowercase letters, digits and '-', at most 40, "
                f"starting and ending alphanumeric; got {args.run_id!r}")
    taken = sorted({t.partition("=")[0] for t in rest} & OWN)
    if taken:
        p.error(f"{', '.join(taken)}: set by rewind-launch (see --help: --workers, --report, "
                "--thresholds are its own; the per-request --timeout is --request-timeout)")
    rest = _absolute_times(rest)
    if args.request_timeout is not None:
        rest += ["--timeout", f"{args.request_timeout:g}s"]
    files = {}
    check = [*rest, "--external-workers", str(args.workers)]
    for name in ("thresholds", "credentials"):
        path = getattr(args, name)
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    files[name] = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                p.error(f"--{name}: cannot read {path}: {getattr(exc, 'strerror', exc)}")
            check += [f"--{name}", path]
    from replayer.replay import options as replay_options
    with _without_replay_env():
        try:
            replay_options.parse(check)
        except SystemExit as exc:
            if exc.code:
                print("rewind-launch: the rewind-replay flags above are not valid; nothing was "
                      "created", file=sys.stderr)
                raise SystemExit(LaunchExit.USAGE) from None
            raise
    return args, rest, files
