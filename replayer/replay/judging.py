"""The phases of one ``rewind-replay`` run after it ran: ``judge`` (the summary, the thresholds'
verdict or the ramp's capacity, and the exit code) and ``report`` (the report folder and the
``replay.done`` line)."""

from __future__ import annotations

import os
from replayer.engine.ramp import step_table
from replayer.judge import correlation_report
from replayer.judge.report import write_report
from replayer.judge.results import summarize
from replayer.judge.verdict import evaluate
from replayer.replay.options import Options
from replayer.replay.phases import Input, Run
from sidecar.contract.exit_codes import ReplayExit

__all__ = ["judge", "report"]


def judge(opts: Options, src: Input, run: Run, log) -> tuple[dict, ReplayExit]:
    """The run's summary (what summary.json holds) and the verdict as an exit code."""
    follower, dealer = src.follower, run.dealer
    summary = summarize(run.out.totals, mode="recorded" if opts.follow else opts.mode,
                        recorded_status=dealer.recorded_status)
    summary["run"] = {"target": opts.target, "source": opts.source, "stream": opts.stream,
                      "mode": opts.mode, "speed": opts.speed, "rate": opts.rps,
                      "workers": opts.workers, "loop": opts.loop, "duration": opts.duration,
                      "follow": opts.follow, "baseline": opts.baseline,
                      "started_at": run.started, "wall_s": round(run.out.wall_s, 3),
                      "first_batch_s": run.out.first_request_s,
                      "ignore": opts.ignore}
    if opts.ramp is not None:
        summary["run"]["rate"] = None
        summary["run"]["duration"] = None
    summary["plan"] = {"records": dealer.records, "steps": dealer.planned or dealer.steps,
                       "dealt": dealer.steps, "unsent": run.out.unsent,
                       "connections": dealer.connections, "connections_forgotten": dealer.forgotten,
                       "skipped": dict(dealer.skipped),
                       "span_s": round(dealer.span, 3), "passes_completed": dealer.iteration}
    if src.feed is not None and src.feed.late:
        summary["plan"]["out_of_capture_order"] = src.feed.late
    if follower:
        skipped = dict(dealer.skipped)
        if follower.bad_records:
            skipped["bad_record"] = follower.bad_records
        summary["plan"].update(records=follower.entries, steps=dealer.steps, skipped=skipped,
                               span_s=None)
        summary["follow"] = {"started_after_id": follower.start_after, "last_id": follower.after_id,
                             "redis_errors": follower.redis_errors,
                             "lag_is": "send time - arrival at the replayer"}
    if opts.credentials is not None:  # masked tokens swapped for real values (--credentials)
        summary["plan"]["credentials"] = opts.credentials.summary()
        log.info("replay.credentials", **opts.credentials.summary())
    summary["correlation"] = correlation_report.section(  # correlation hook
        run.out.correlation, (), run.learning.stats() if run.learning else None,
        enabled=run.learning is not None)
    if run.noise is not None:
        summary["noise"] = run.noise.to_json(opts.baseline)
    if run.health is not None:  # the watched series (issue 13: replayer.watch)
        summary["health"] = run.health
    code = ReplayExit.OK
    if opts.thresholds is not None:
        code = _thresholds(opts.thresholds, summary, log)
    if opts.ramp is not None:
        code = _ramp(opts, summary, run, log)
    return summary, code


def _thresholds(thresholds: dict, summary: dict, log) -> ReplayExit:
    checks = evaluate(thresholds, summary)
    passed = all(c.ok for c in checks)
    summary["verdict"] = {"passed": passed, "checks": [
        {"metric": c.metric, "bound": c.bound, "limit": c.limit, "scope": c.scope,
         "value": c.value, "ok": c.ok, "line": c.line()} for c in checks]}
    for c in checks:
        if not c.ok:
            log.warning("replay.threshold_failed", line=c.line())
    return ReplayExit.OK if passed else ReplayExit.FAILED


def _ramp(opts: Options, summary: dict, run: Run, log) -> ReplayExit:
    ramp, monitor, out = opts.ramp, run.monitor, run.out
    monitor.finish(out.totals, out.wall_s)
    broke = next((v for v in monitor.verdicts if not v.held), None)
    summary["ramp"] = {
        **ramp.to_json(), "slo": opts.slo,
        "slo_limits": {o.metric: o.limit for o in opts.objectives},  # ms; errors: share
        "capacity_rps": monitor.capacity,
        "broken_at_rps": broke.rate if broke else None,
        "broken_by": broke.failing if broke else [],
        "reached_max": broke is None and len(monitor.verdicts) == len(ramp.rates),
        "judge_after_s": round(monitor.grace, 3),
        "steps": step_table(out.totals, ramp, monitor)}
    log.info("replay.ramp_done", capacity_rps=monitor.capacity,
             broken_at_rps=broke.rate if broke else None,
             broken_by=broke.failing if broke else None)
    return ReplayExit.OK if monitor.capacity is not None else ReplayExit.FAILED


def report(opts: Options, summary: dict, run: Run, code: ReplayExit, log) -> None:
    """Write the report folder (--report) and log the run's totals."""
    if opts.report:
        write_report(opts.report, summary, run.out.stats)
    t = summary["totals"]
    log.info("replay.done", sent=t["sent"], errors=t["errors"], rps=t["rps"],
             p95_ms=summary["latency_ms"]["p95"],
             lag_p99_ms=(summary["lag_ms"] or {}).get("p99"),
             status_mismatch_rate=t["status_mismatch_rate"],
             body_mismatch_rate=t["body_mismatch_rate"],
             verdict=None if opts.thresholds is None else (
                 "pass" if code == ReplayExit.OK else "fail"),
             report=os.path.abspath(opts.report) if opts.report else None)
