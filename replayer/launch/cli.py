"""``rewind-launch``: a distributed replay as Kubernetes Jobs, without an operator.

Creates the run's objects (``replayer.launch.manifests``), waits for the master's verdict
(``replayer.launch.wait``), unpacks the report bundle from the master's log
(``replayer.launch.bundle``) and deletes every object of the run, also on SIGINT/SIGTERM (a
second signal during the clean-up is ignored). The exit code is the replay's (``ReplayExit``),
or ``LaunchExit.NO_VERDICT`` when there is none (``--help``).
"""

from __future__ import annotations

import math
import signal
import sys

import structlog

from replayer.launch.args import parse
from replayer.launch.bundle import BundleError, find_bundle, unpack
from replayer.launch.kube import Cluster, ClusterError, connect
from replayer.launch.manifests import LaunchSpec, build, names, with_owner
from replayer.launch.wait import Outcome, Waiter
from sidecar.common import logs
from sidecar.contract.exit_codes import LaunchExit, ReplayExit

__all__ = ["main"]

VERDICTS = frozenset(int(code) for code in ReplayExit)  # passed on as they are


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so no library's ``except Exception`` eats it)."""


def _interrupt(signum, _frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def make_spec(args, replay_argv: list[str], files: dict[str, str], namespace: str) -> LaunchSpec:
    requests = {k: v for k, v in (("cpu", args.worker_cpu), ("memory", args.worker_memory)) if v}
    return LaunchSpec(
        run_id=args.run_id, namespace=namespace, image=args.image, workers=args.workers,
        replay_args=tuple(replay_argv), thresholds=files.get("thresholds"),
        credentials=files.get("credentials"), deadline_s=math.ceil(args.timeout),
        ttl_s=int(args.ttl), report_claim=args.report_claim,
        image_pull_policy=args.image_pull_policy, image_pull_secrets=tuple(args.image_pull_secret),
        service_account=args.service_account, worker_requests=requests,
        metrics_port=args.metrics_port)


def delete_run(cluster: Cluster, run_id: str, created: list[tuple[str, str]], log) -> bool:
    """Delete what was created (newest first), then the run's other names and anything else
    labelled with the run id (what an interrupted create may have made)."""
    n = names(run_id)
    targets, ok = list(reversed(created)), True
    for known in (("Job", n["workers"]), ("Service", n["service"]), ("Secret", n["secret"]),
                  ("ConfigMap", n["config"]), ("Job", n["master"])):
        if known not in targets:
            targets.append(known)
    try:
        targets += [t for t in cluster.of_run(run_id) if t not in targets]
    except ClusterError as exc:
        log.error("launch.cleanup_failed", error=str(exc))
        ok = False
    deleted = []
    for kind, name in targets:
        try:
            if cluster.delete(kind, name):
                deleted.append(f"{kind}/{name}")
        except ClusterError as exc:
            log.error("launch.cleanup_failed", error=str(exc),
                      note="ttlSecondsAfterFinished removes the Jobs later")
            ok = False
    log.info("launch.deleted", run_id=run_id, objects=deleted)
    return ok


def verdict(outcome: Outcome, log) -> int:
    if outcome.exit_code is None:
        log.error("launch.no_verdict", reason=outcome.reason, exit_code=int(LaunchExit.NO_VERDICT))
        return LaunchExit.NO_VERDICT
    if outcome.exit_code not in VERDICTS:
        log.error("launch.no_verdict", reason=f"{outcome.reason}: not a rewind-replay exit code",
                  exit_code=int(LaunchExit.NO_VERDICT))
        return LaunchExit.NO_VERDICT
    return outcome.exit_code


def collect(waiter: Waiter, outcome: Outcome, run_id: str, folder: str, log) -> bool:
    if outcome.master_pod is None:
        log.error("launch.report_missing", reason="no master Pod")
        return False
    try:
        bundle = find_bundle(waiter.full_log(outcome.master_pod), run_id)
        files = unpack(bundle.data, folder)
    except (BundleError, ClusterError, OSError) as exc:
        log.error("launch.report_missing", error=str(exc))
        return False
    log.info("launch.report", folder=folder, files=files, bytes=len(bundle.data))
    return True


def launch(cluster: Cluster, spec: LaunchSpec, args, log, echo) -> int:
    created: list[tuple[str, str]] = []
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    code = LaunchExit.NO_VERDICT
    try:
        owner = None
        for obj in build(spec):
            if owner is not None and (owner.get("metadata") or {}).get("uid"):
                obj = with_owner(obj, owner)
            made = cluster.create(obj)
            created.append((obj["kind"], obj["metadata"]["name"]))
            owner = owner or made
            log.info("launch.created", kind=obj["kind"], name=obj["metadata"]["name"])
        log.info("launch.started", run_id=spec.run_id, namespace=spec.namespace,
                 workers=spec.workers, image=spec.image, timeout_s=args.timeout)
        waiter = Waiter(cluster, spec.run_id, timeout_s=args.timeout, poll_s=args.poll, log=log,
                        echo=echo)
        outcome = waiter.wait()
        code = verdict(outcome, log)
        if args.report and outcome.exit_code is not None and not collect(
                waiter, outcome, spec.run_id, args.report, log):
            code = LaunchExit.NO_VERDICT
        log.info("launch.done", run_id=spec.run_id, exit_code=int(code), reason=outcome.reason)
    except Interrupted as exc:
        log.warning("launch.interrupted", signal=str(exc), exit_code=int(LaunchExit.NO_VERDICT))
        code = LaunchExit.NO_VERDICT
    except ClusterError as exc:
        log.error("launch.cluster_error", error=str(exc), exit_code=int(LaunchExit.NO_VERDICT))
        code = LaunchExit.NO_VERDICT
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)  # the clean-up must finish
        try:
            if args.keep:
                log.info("launch.kept", run_id=spec.run_id, objects=created)
            else:
                delete_run(cluster, spec.run_id, created, log)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
    return code


def main(argv: list[str] | None = None) -> int:
    args, replay_argv, files = parse(argv)
    logs.configure_from(args.log_level, args.log_format)
    log = structlog.get_logger("rewind.launch")
    if args.dry_run and args.delete is None:
        import yaml
        shown = {**files, **({"credentials": f"(the contents of {args.credentials}, not shown)"}
                             if "credentials" in files else {})}
        spec = make_spec(args, replay_argv, shown, args.namespace or "default")
        sys.stdout.write(yaml.safe_dump_all(build(spec), sort_keys=False))
        return ReplayExit.OK
    try:
        api, namespace = connect(args.kubeconfig, args.context)
    except ClusterError as exc:
        print(f"rewind-launch: {exc}", file=sys.stderr)
        return LaunchExit.NO_VERDICT
    cluster = Cluster(api, args.namespace or namespace)
    if args.delete is not None:
        return ReplayExit.OK if delete_run(cluster, args.delete, [], log) else LaunchExit.NO_VERDICT

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return launch(cluster, make_spec(args, replay_argv, files, cluster.namespace), args, log, echo)


if __name__ == "__main__":
    sys.exit(main())
