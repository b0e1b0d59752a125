"""The capture Helm chart (charts/rewind-capture), rendered and checked by the real helm binary
(`make tools` installs it into .tools/bin) and validated against the Kubernetes API schemas with
kubernetes-validate. A missing helm fails these tests: the chart is part of what CI proves."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rewind-capture"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "rw"


@functools.cache
def helm_binary() -> str:
    """The helm used by the tests: .tools/bin/helm, else $HELM, else helm on PATH."""
    for candidate in (ROOT / ".tools" / "bin" / "helm", os.environ.get("HELM"), shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("helm not found: run `make tools` (ci/get-helm.sh installs it into .tools/bin)")


def helm(*args: str) -> subprocess.CompletedProcess:
    """Runs helm with the chart's folder as the working directory, capturing its output."""
    return subprocess.run([helm_binary(), *args], cwd=CHART, capture_output=True, text=True, timeout=60)


def values_args(scenario: str | None, sets: tuple[str, ...]) -> list[str]:
    """helm flags for a ci/ scenario file plus --set overrides."""
    args = ["-f", f"ci/{scenario}-values.yaml"] if scenario else []
    for s in sets:
        args += ["--set", s]
    return args


@functools.cache
def render(scenario: str | None = None, sets: tuple[str, ...] = ()) -> tuple[dict, ...]:
    """The manifests `helm template` renders (tests included), as parsed YAML documents."""
    out = helm("template", RELEASE, ".", "--namespace", "shop", "--include-crds",
               *values_args(scenario, sets))
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def find(docs, kind: str, suffix: str) -> dict:
    """The one document of `kind` whose name ends with `suffix`."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(hits) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in docs]}"
    return hits[0]


def container(pod_spec: dict, name: str) -> dict:
    """The container called `name` in a pod spec."""
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def env(c: dict) -> dict:
    """A container's environment as {name: value or valueFrom}."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def example_pod(scenario: str = "example", sets: tuple[str, ...] = ()) -> dict:
    """The pod template of the example API Deployment."""
    return find(render(scenario, sets), "Deployment", "-example")["spec"]["template"]


def pod_templates(docs):
    """Every pod template (Deployments, CronJob job templates, bare Pods) with its owner's name."""
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["metadata"]["name"], d["spec"]["template"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], {"metadata": d["metadata"], "spec": d["spec"]}


def test_every_scenario_has_a_ci_file():
    """The scenarios CI lints and renders are the ones the chart documents."""
    assert set(SCENARIOS) >= {"default", "example", "external-redis", "archiver", "schedule", "privileged",
                              "host-headers"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(scenario):
    """helm lint --strict passes (schema, templates, warnings as errors) for each scenario."""
    out = helm("lint", ".", "--strict", *values_args(scenario, ()))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_manifests_validate(scenario):
    """Each scenario's rendered manifests validate strictly against the Kubernetes API schemas."""
    import kubernetes_validate

    docs = render(scenario)
    assert docs
    for d in docs:
        if d["apiVersion"].startswith("monitoring.coreos.com/"):  # a CRD: no schema in the package
            assert d["kind"] == "ServiceMonitor"
            continue
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)


def test_sidecar_shares_the_api_pod_and_its_process_namespace():
    """In the example the sidecar is a container of the API's own pod, with shareProcessNamespace."""
    spec = example_pod()["spec"]
    assert [c["name"] for c in spec["containers"]] == ["api", "rewind-capture"]
    assert spec["shareProcessNamespace"] is True
    side = container(spec, "rewind-capture")
    assert side["command"] == ["rewind-capture"]
    e = env(side)
    api_port = container(spec, "api")["ports"][0]["containerPort"]
    assert e["REWIND_PORT"] == str(api_port) == "8080"
    assert e["REWIND_STREAM"] == "api"
    assert e["REWIND_NODE"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_sidecar_uses_capabilities_not_privileged_by_default():
    """By default the sidecar is unprivileged with CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE added."""
    sc = container(example_pod()["spec"], "rewind-capture")["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["add"] == ["BPF", "PERFMON", "SYS_PTRACE"]


def test_privileged_fallback():
    """sidecar.privileged: true makes the sidecar privileged, with no capability list."""
    sc = container(example_pod("privileged")["spec"], "rewind-capture")["securityContext"]
    assert sc["privileged"] is True
    assert "capabilities" not in sc


def test_tls_value_sets_rewind_tls():
    """sidecar.tls: true renders REWIND_TLS=true (rewind-capture --tls); off by default."""
    assert "REWIND_TLS" not in env(container(example_pod()["spec"], "rewind-capture"))
    pod = example_pod(sets=("sidecar.tls=true",))
    assert env(container(pod["spec"], "rewind-capture"))["REWIND_TLS"] == "true"


def test_sys_admin_fallback_allows_escalation():
    """With SYS_ADMIN (kernels before 5.8) allowPrivilegeEscalation is not forced to false."""
    pod = example_pod(sets=("sidecar.capabilities={SYS_ADMIN,SYS_PTRACE}",))
    sc = container(pod["spec"], "rewind-capture")["securityContext"]
    assert sc["capabilities"]["add"] == ["SYS_ADMIN", "SYS_PTRACE"]
    assert "allowPrivilegeEscalation" not in sc


def test_sidecar_mounts_tracefs_and_debugfs_and_host_headers_only_when_asked():
    """The sidecar mounts host tracefs and debugfs; the node's kernel headers (/lib/modules,
    /usr/src, read-only) only with sidecar.hostHeaders, and then without a type check, so a node
    that has none still starts the pod (the image carries headers)."""
    spec = example_pod()["spec"]
    volumes = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in container(spec, "rewind-capture")["volumeMounts"]}
    assert set(mounts) == {"/sys/kernel/debug", "/sys/kernel/tracing"}
    for path in mounts:
        assert volumes[mounts[path]["name"]] == {"path": path, "type": "Directory"}
    assert "volumeMounts" not in container(spec, "api")
    spec = example_pod("host-headers")["spec"]
    volumes = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in container(spec, "rewind-capture")["volumeMounts"]}
    for path in ("/lib/modules", "/usr/src"):
        assert volumes[mounts[path]["name"]] == {"path": path}  # no type: never blocks the pod
        assert mounts[path]["readOnly"] is True


def test_sidecar_seccomp_is_explicit():
    """The sidecar container (only) runs seccomp Unconfined by default, since runtimes' default
    profiles refuse bpf() without CAP_SYS_ADMIN; RuntimeDefault and Localhost (which needs
    its profile's path) can be chosen; the API container is left alone."""
    spec = example_pod()["spec"]
    assert container(spec, "rewind-capture")["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert "securityContext" not in container(spec, "api") and "securityContext" not in spec
    local = example_pod(sets=("sidecar.seccompProfile.type=Localhost",
                              "sidecar.seccompProfile.localhostProfile=profiles/rewind.json"))
    assert container(local["spec"], "rewind-capture")["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "profiles/rewind.json"}
    out = helm("template", RELEASE, ".", *values_args("example", ("sidecar.seccompProfile.type=Localhost",)))
    assert out.returncode != 0 and "localhostProfile" in out.stderr


def test_metrics_port_and_scrape_annotations():
    """The sidecar's metrics port 9102 is named `metrics`, annotated for scraping and on the Service."""
    pod = example_pod()
    ports = container(pod["spec"], "rewind-capture")["ports"]
    assert {"name": "metrics", "containerPort": 9102, "protocol": "TCP"} in ports
    ann = pod["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": "9102",
                   "prometheus.io/path": "/metrics"}
    svc = find(render("example"), "Service", "-example")
    metrics = {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    assert metrics in svc["spec"]["ports"]
    assert "annotations" not in example_pod(sets=("scrapeAnnotations=false",))["metadata"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_are_stable_and_match_their_pods(scenario):
    """No selector holds helm.sh/chart, and each Deployment/Service selector matches its pods."""
    docs = render(scenario)
    pods = {name: tpl["metadata"]["labels"] for name, tpl in pod_templates(docs)}
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "Deployment":
            sel = spec["selector"]["matchLabels"]
            assert sel.items() <= spec["template"]["metadata"]["labels"].items()
        elif d["kind"] == "Service":
            sel = spec["selector"]
            assert any(sel.items() <= labels.items() for labels in pods.values()), d["metadata"]["name"]
        elif d["kind"] == "ServiceMonitor":
            sel = spec["selector"]["matchLabels"]
        else:
            continue
        assert "helm.sh/chart" not in sel
        assert "app.kubernetes.io/version" not in sel


def test_bundled_redis_is_what_the_sidecar_writes_to():
    """With the bundled Redis the sidecar's REWIND_REDIS names the chart's Redis Service."""
    docs = render("example")
    svc = find(docs, "Service", "-redis")
    redis = find(docs, "Deployment", "-redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"] == "redis:7"
    e = env(container(example_pod()["spec"], "rewind-capture"))
    assert e["REWIND_REDIS"] == f"redis://{svc['metadata']['name']}:6379/0"
    image = find(render(None, ("redis.image.tag=7.2-alpine",)), "Deployment", "-redis")
    assert image["spec"]["template"]["spec"]["containers"][0]["image"] == "redis:7.2-alpine"


def test_external_redis():
    """redis.url with redis.enabled=false renders no Redis and points the sidecar at the URL."""
    docs = render("external-redis")
    assert not [d for d in docs if d["metadata"]["name"].endswith("-redis")]
    e = env(container(example_pod("external-redis")["spec"], "rewind-capture"))
    assert e["REWIND_REDIS"] == "redis://redis.shared.svc.cluster.local:6379/2"


@pytest.mark.parametrize("sets, message", [
    (("redis.url=redis://elsewhere:6379/0",), "set redis.enabled=false"),
    (("redis.enabled=false",), "no Redis"),
])
def test_redis_choice_must_be_unambiguous(sets, message):
    """Both or neither of bundled and external Redis fail with a message saying what to set."""
    out = helm("template", RELEASE, ".", *values_args(None, sets))
    assert out.returncode != 0
    assert message in out.stderr


@pytest.mark.parametrize("sets", [
    ("sidecar.privilegd=true",),
    ("colour=blue",),
    ("archiver.persistence.sise=1Gi",),
])
def test_unknown_values_are_rejected(sets):
    """A misspelt or unknown key fails helm template and helm lint instead of being ignored."""
    out = helm("template", RELEASE, ".", *values_args(None, sets))
    assert out.returncode != 0
    assert "additional properties" in out.stderr.lower() or "additionalProperties" in out.stderr
    assert helm("lint", ".", "--strict", *values_args(None, sets)).returncode != 0


def test_archiver_runs_rewind_archive_on_its_claim():
    """The archiver runs rewind-archive --redis --stream --out /archive on a PersistentVolumeClaim."""
    docs = render("archiver")
    dep = find(docs, "Deployment", "-archiver")
    pvc = find(docs, "PersistentVolumeClaim", "-archiver")
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["command"] == ["rewind-archive"]
    args = c["args"]
    assert args[args.index("--redis") + 1] == f"redis://{RELEASE}-rewind-capture-redis:6379/0"
    assert args[args.index("--stream") + 1] == "api"
    assert args[args.index("--out") + 1] == "/archive"
    assert args[-3:] == ["--trim-archived", "--keep-days", "30"]
    assert {"name": "archive", "mountPath": "/archive"} in c["volumeMounts"]
    assert spec["volumes"] == [{"name": "archive",
                                "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}}]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9103"


def test_schedule_renders_a_host_level_cronjob_with_duration():
    """schedule.enabled renders a CronJob capturing on the node (hostPID, hostNetwork) with --duration."""
    cron = find(render("schedule"), "CronJob", "-schedule")
    assert cron["spec"]["schedule"] == "0 10 * * 1-5"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "worker-1"}
    c = spec["containers"][0]
    assert c["command"] == ["rewind-capture"]
    assert c["args"][c["args"].index("--duration") + 1] == "15m"
    assert c["securityContext"]["capabilities"]["add"] == ["BPF", "PERFMON", "SYS_PTRACE"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/sys/kernel/tracing"}
    assert c["securityContext"]["seccompProfile"] == {"type": "Unconfined"}


def test_cluster_features_are_off_by_default():
    """By default only the bundled Redis and the test pod render (no example, archiver, CronJob...)."""
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in render("default"))
    prefix = f"{RELEASE}-rewind-capture"
    assert kinds == [("Deployment", f"{prefix}-redis"), ("Pod", f"{prefix}-test"),
                     ("Service", f"{prefix}-redis")]


def test_service_monitor_when_enabled():
    """serviceMonitor.enabled renders a ServiceMonitor for `metrics` ports of this release's Services."""
    docs = render("example", ("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom"))
    sm = find(docs, "ServiceMonitor", "rewind-capture")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    svc = find(docs, "Service", "-example")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_default_resource_limits(scenario):
    """No container gets resources unless the user sets them."""
    for name, tpl in pod_templates(render(scenario)):
        for c in tpl["spec"]["containers"]:
            assert "resources" not in c, (name, c["name"])


def test_connection_test_pod():
    """The helm test pod curls the example's metrics port, or pings Redis without the example."""
    pod = find(render("example"), "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["args"] == [f"http://{RELEASE}-rewind-capture-example:9102/metrics"]
    ping = find(render("external-redis", ("example.enabled=false",)), "Pod", "-test")["spec"]["containers"][0]
    assert ping["command"] == ["redis-cli", "-u", "redis://redis.shared.svc.cluster.local:6379/2", "ping"]


def test_names_are_cut_at_63_characters():
    """Resource names stay within 63 characters (CronJobs 52) for a long release name."""
    out = helm("template", "r" * 53, ".", "-f", "ci/example-values.yaml", "-f", "ci/archiver-values.yaml",
               "-f", "ci/schedule-values.yaml")
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    names = [d["metadata"]["name"] for d in docs]
    assert len({(d["kind"], d["metadata"]["name"]) for d in docs}) == len(docs) >= 8
    assert all(len(n) <= 63 and not n.endswith("-") for n in names), names
    cron = next(d["metadata"]["name"] for d in docs if d["kind"] == "CronJob")
    assert len(cron) <= 52 and cron.endswith("-schedule")


PARENT_DEPLOYMENT = """\
{{- $rw := index .Subcharts "rewind-capture" }}
{{- $port := $rw.Values.sidecar.metricsPort }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-api
spec:
  selector:
    matchLabels: {app: my-api}
  template:
    metadata:
      labels: {app: my-api}
      annotations:
        {{- include "rewind-capture.scrapeAnnotations" (list $rw $port) | nindent 8 }}
    spec:
      shareProcessNamespace: true
      containers:
        - name: api
          image: my-api:1.2.3
          ports: [{name: http, containerPort: 9000}]
        {{- include "rewind-capture.sidecar" $rw | nindent 8 }}
      volumes:
        {{- include "rewind-capture.sidecarVolumes" $rw | nindent 8 }}
"""


def test_sidecar_included_from_a_parent_chart(tmp_path):
    """A user's chart with rewind-capture as a subchart includes the sidecar as docs/chart.md shows."""
    import kubernetes_validate

    parent = tmp_path / "my-api"
    shutil.copytree(CHART, parent / "charts" / "rewind-capture")
    (parent / "templates").mkdir()
    (parent / "templates" / "deployment.yaml").write_text(PARENT_DEPLOYMENT)
    (parent / "Chart.yaml").write_text(textwrap.dedent("""\
        apiVersion: v2
        name: my-api
        version: 1.0.0
        dependencies:
          - name: rewind-capture
            version: 0.1.0
            repository: file://charts/rewind-capture
        """))
    (parent / "values.yaml").write_text(textwrap.dedent("""\
        global: {}
        rewind-capture:
          stream: orders
          sidecar:
            port: 9000
        """))
    lint = helm("lint", str(parent), "--strict")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = helm("template", "shop", str(parent))
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    for d in docs:
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)
    pod = find(docs, "Deployment", "my-api")["spec"]["template"]
    side = container(pod["spec"], "rewind-capture")
    e = env(side)
    assert (e["REWIND_PORT"], e["REWIND_STREAM"]) == ("9000", "orders")
    redis_svc = find(docs, "Service", "-redis")["metadata"]["name"]
    assert e["REWIND_REDIS"] == f"redis://{redis_svc}:6379/0"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9102"
    assert {v["name"] for v in pod["spec"]["volumes"]} == {m["name"] for m in side["volumeMounts"]}


def rewind_containers(docs):
    """(command, container) for every container that runs a rewind console script."""
    for _, tpl in pod_templates(docs):
        for c in tpl["spec"]["containers"]:
            if c.get("command", [""])[0] in ("rewind-capture", "rewind-archive"):
                yield c["command"][0], c


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_command_lines_are_accepted_by_the_clis(scenario, monkeypatch):
    """Each rendered rewind-capture/rewind-archive container's args and REWIND_* env parse in the real CLI."""
    from sidecar.archive import cli as archive_cli
    from sidecar.capture import cli as capture_cli

    parsers = {"rewind-capture": capture_cli.parse, "rewind-archive": archive_cli.parse}
    checked = 0
    for command, c in rewind_containers(render(scenario)):
        with monkeypatch.context() as m:
            for name in [k for k in os.environ if k.startswith("REWIND_")]:
                m.delenv(name)
            for name, value in env(c).items():
                m.setenv(name, value if isinstance(value, str) else "pod-abc12")
            args = parsers[command](c.get("args", []))
        if command == "rewind-capture":
            assert (args.port, args.stream, args.metrics_port) == ((8080,), "api", 9102)
            assert args.node == "pod-abc12"
            assert args.duration == (900 if scenario == "schedule" else None)
        else:
            assert args.out == "/archive"
            assert args.stream_maxlen == 1_000_000  # rewind-capture's default --maxlen
        checked += 1
    assert checked == {"default": 0, "archiver": 1}.get(scenario, 1)
