"""The replay Helm chart (charts/rewind-replay), rendered by the real helm binary (`make tools`),
validated with kubernetes-validate --strict, its container args parsed by the real CLIs, and
held to the objects rewind-launch creates (replayer/launch/manifests.py)."""

from __future__ import annotations

import functools
import json
import os
import subprocess

import kubernetes_validate
import pytest
import yaml

from replayer.launch import master as launch_master

from replayer.replay import options as replay_options

from replayer.engine import worker
from replayer.launch.manifests import LAUNCHER_RULES, LaunchSpec, build
from tests.integration.test_chart import ROOT, helm_binary

CHART = ROOT / "charts" / "rewind-replay"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *args], cwd=CHART, capture_output=True, text=True, timeout=60)


@functools.cache
def render(scenario: str, sets: tuple[str, ...] = ()) -> tuple[dict, ...]:
    flags = ["-f", f"ci/{scenario}-values.yaml"]
    for s in sets:  # "json:KEY=JSON" is given with --set-json (--set makes 0.01 a string)
        flags += ["--set-json", s[5:]] if s.startswith("json:") else ["--set", s]
    out = helm("template", "rw", ".", "--namespace", "replay", *flags)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def find(docs, kind: str, suffix: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(hits) == 1, [(d["kind"], d["metadata"]["name"]) for d in docs]
    return hits[0]


def container(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_and_strict_validation(scenario):
    """helm lint --strict passes and every rendered object validates strictly, per scenario."""
    out = helm("lint", ".", "--strict", "-f", f"ci/{scenario}-values.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    for d in render(scenario):
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "rbac-only"])
def test_container_args_parse_in_the_real_clis(scenario, tmp_path, monkeypatch):
    """The master's args pass rewind-launch-master's parser and then rewind-replay's full check
    (with the rendered ConfigMap as the thresholds file); the workers' pass
    rewind-replay-worker's and name the master's Service, whose selector matches the master Pod."""
    for name in [k for k in os.environ if k.startswith("REWIND_")]:
        monkeypatch.delenv(name)
    docs = render(scenario)
    master, workers = find(docs, "Job", "-master"), find(docs, "Job", "-workers")
    wrapper = launch_master.build_parser().parse_args(container(master)["args"])
    replay = wrapper.replay_args[1:]
    cms = [d for d in docs if d["kind"] == "ConfigMap"]
    if cms:
        (tmp_path / "t.json").write_text(cms[0]["data"]["thresholds.json"])
        replay = [str(tmp_path / "t.json") if a == "/etc/rewind/thresholds.json" else a for a in replay]
    if "--credentials" in replay:
        (tmp_path / "c.yaml").write_text("headers: {Authorization: Bearer x}\n")
        replay[replay.index("--credentials") + 1] = str(tmp_path / "c.yaml")
    opts = replay_options.parse(replay)
    assert opts.external
    assert opts.workers == workers["spec"]["completions"] == workers["spec"]["parallelism"]
    run_id = master["metadata"]["labels"]["rewind.dev/run-id"]
    assert opts.report == wrapper.report_dir == f"/reports/{run_id}"
    w = worker.build_parser().parse_args(container(workers)["args"])
    service = find(docs, "Service", "-master")
    assert w.master_host == service["metadata"]["name"] and w.master_port == opts.bind_port
    pod_labels = master["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert workers["spec"]["completionMode"] == "Indexed"


@pytest.mark.parametrize("sets, port", [((), 9104), (("metricsPort=9200",), 9200), (("metricsPort=0",), 0)])
def test_the_master_serves_live_metrics_where_prometheus_looks(sets, port):
    """The master runs rewind-replay with --metrics-port, names that port `metrics` on its Pod
    and on the Service (a ServiceMonitor's target) and annotates the Pod for scraping; with
    metricsPort=0 none of it is there."""
    docs = render("minimal", sets)
    master, service = find(docs, "Job", "-master"), find(docs, "Service", "-master")
    opts = replay_options.parse(launch_master.build_parser().parse_args(
        container(master)["args"]).replay_args[1:])
    pod_ports = {p["name"]: p["containerPort"] for p in container(master)["ports"]}
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    annotations = master["spec"]["template"]["metadata"].get("annotations", {})
    assert opts.metrics_port == port
    if port:
        assert pod_ports["metrics"] == service_ports["metrics"] == port
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                               "prometheus.io/path": "/metrics"}
    else:
        assert "metrics" not in pod_ports and "metrics" not in service_ports and not annotations


def test_chart_and_launcher_render_the_same_run(tmp_path):
    """For the same inputs, the chart and rewind-launch give the same objects in what matters:
    names, Job specs, Pod specs (commands, args, mounts, security), the Service and the
    thresholds; only bookkeeping labels differ."""
    thresholds = {"max_p95_ms": 200, "max_error_rate": 0.01}
    docs = render("minimal", ("runId=same-1", "workers=3", "json:thresholds=" + json.dumps(thresholds)))
    spec = LaunchSpec(run_id="same-1", namespace="replay", image="rewind/replayer:0.1.0", workers=3,
                      replay_args=("--source", "redis://rewind-redis:6379/0", "--stream", "orders",
                                   "--target", "http://candidate:8080", "--mode", "recorded"),
                      thresholds=json.dumps(thresholds))
    launched = build(spec)

    def essentials(d: dict) -> dict:
        out = {"kind": d["kind"], "name": d["metadata"]["name"],
               "labels": {k: v for k, v in d["metadata"]["labels"].items() if k.startswith("rewind.dev/")}}
        if d["kind"] == "Job":
            s = dict(d["spec"])
            pod = s.pop("template")
            out["job"] = s
            out["pod_labels"] = {k: v for k, v in pod["metadata"]["labels"].items()
                                 if k.startswith("rewind.dev/")}
            out["pod"] = pod["spec"]
        elif d["kind"] == "Service":
            out["spec"] = d["spec"]
        elif d["kind"] == "ConfigMap":
            out["thresholds"] = json.loads(d["data"]["thresholds.json"])
        return out

    chart = sorted((essentials(d) for d in docs if d["kind"] != "Pod"), key=lambda e: (e["kind"], e["name"]))
    mine = sorted((essentials(d) for d in launched), key=lambda e: (e["kind"], e["name"]))
    assert chart == mine


def test_rbac_is_what_the_launcher_needs():
    """rbac.create renders a ServiceAccount, a Role with exactly LAUNCHER_RULES and a binding;
    rbac-only renders nothing else."""
    docs = render("rbac-only")
    assert sorted(d["kind"] for d in docs) == ["Role", "RoleBinding", "ServiceAccount"]
    role = find(docs, "Role", "jenkins-rewind")
    assert role["rules"] == LAUNCHER_RULES
    binding = find(docs, "RoleBinding", "jenkins-rewind")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jenkins-rewind", "namespace": "replay"}]


@pytest.mark.parametrize(("sets", "message"), [
    (("replay.sourse=x",), "additional properties"),
    (("runId=Bad_Id",), "runId"),
    (("replay.source=",), "replay.source is required"),
    (("workers=0",), "workers"),
])
def test_bad_values_fail_with_a_message(sets, message):
    """A misspelt key, a run id that cannot be a name, no source, or no workers fail the render
    with a message naming it."""
    flags = ["-f", "ci/minimal-values.yaml"]
    for s in sets:
        flags += ["--set", s]
    out = helm("template", "rw", ".", *flags)
    assert out.returncode != 0
    assert message.lower() in out.stderr.lower()
