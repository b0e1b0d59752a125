"""rewind-launch against a Kubernetes API over real HTTP: the kmock emulator (tests/support/kube.py)
plays the API server, the test plays the Job controller and kubelet (Pods, their states, the
master's log with a report bundle). Every object the launcher sends is validated with
kubernetes-validate --strict; every run must leave nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from replayer.launch import cli as launch_cli
from replayer.launch.bundle import lines, pack
from replayer.launch.manifests import RUN_LABEL, names, run_labels
from tests.support.kube import KubeEmulator
from tests.support.servers import REPO

NS = "replay"
RUN = "t-1"
REPLAY = ["--source", "redis://redis:6379/0", "--stream", "orders", "--target", "http://candidate:8080",
          "--mode", "rps", "--rps", "50", "--set-header", "Authorization: Bearer x"]


@pytest.fixture
def kube():
    with KubeEmulator() as k:
        yield k


def launch_argv(kube, tmp_path, *extra: str) -> list[str]:
    return ["--kubeconfig", str(kube.kubeconfig(tmp_path, NS)), "--run-id", RUN, "--workers", "2",
            "--poll", "0.05s", "--log-format", "json", *extra, *REPLAY]


def validate_all(objs) -> None:
    version = kubernetes_validate.latest_version()
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)


def left_over(kube) -> dict[str, list[str]]:
    return {plural: kube.names(plural, NS) for plural in ("jobs", "services", "configmaps", "secrets")
            if kube.names(plural, NS)}


def assert_allowed_by_launcher_role(kube) -> None:
    """Every request the launcher made is allowed by LAUNCHER_RULES (the Role in docs/launch.md
    and charts/rewind-replay)."""
    from urllib.parse import urlsplit

    from replayer.launch.manifests import LAUNCHER_RULES
    allowed = {(g, r, v) for rule in LAUNCHER_RULES for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    for method in ("GET", "POST", "DELETE"):
        for path, _ in kube.sent(method):
            parts = urlsplit(path).path.strip("/").split("/")
            group = "" if parts[0] == "api" else parts[1]
            rest = parts[parts.index("namespaces") + 2:]
            resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
            verb = {"POST": "create", "DELETE": "delete"}.get(method, "get" if len(rest) > 1 else "list")
            assert (group, resource, verb) in allowed, (method, path)


def report_folder(tmp_path: Path, code: int) -> Path:
    folder = tmp_path / "pod-report"
    folder.mkdir(exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({"verdict": {"passed": code == 0}}))
    (folder / "report.html").write_text("<html>report</html>")
    return folder


def play_cluster(kube, *, code: int | None, log: list[str], after: float = 0.3,
                 waiting: str | None = None) -> threading.Thread:
    """Once the worker Job exists: master and worker Pods run, the master logs ``log``; after
    ``after`` s the master ends with ``code`` (None: it never ends; ``waiting``: it is stuck)."""
    def run() -> None:
        deadline = time.monotonic() + 10
        while names(RUN)["workers"] not in kube.names("jobs", NS):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        master = f"{names(RUN)['master']}-x1"
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
        kube.put_pod(NS, master, run_labels(RUN, "master"), phase="Pending" if waiting else "Running",
                     state=state)
        for i in range(2):
            kube.put_pod(NS, f"{names(RUN)['workers']}-{i}-y", run_labels(RUN, "worker"),
                         phase="Running", state={"running": {}})
        kube.log_lines[master] = log[:2]
        time.sleep(after)
        kube.log_lines[master] = list(log)
        if code is not None and not waiting:
            time.sleep(0.1)
            kube.put_pod(NS, master, run_labels(RUN, "master"),
                         phase="Succeeded" if code == 0 else "Failed",
                         state={"terminated": {"exitCode": code, "reason": "Completed" if code == 0
                                               else "Error"}})
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def master_log(tmp_path, code: int, bundle: bool = True) -> list[str]:
    out = ['{"event": "replay.plan", "steps": 100}', '{"event": "replay.progress", "sent": 50}',
           '{"event": "replay.done", "sent": 100}']
    if bundle:
        out += lines(RUN, code, pack(report_folder(tmp_path, code)))
    return out


@pytest.mark.parametrize("code", [0, 1, 3])
def test_verdict_comes_back_with_the_report_and_everything_is_deleted(kube, tmp_path, capsys, code):
    """The launcher creates master Job, ConfigMap, Secret, Service and Indexed worker Job (all
    valid, labelled with the run id, later ones owned by the master Job), shows Pod states and
    the master's log lines once each, unpacks the report, exits with the master's code, and
    deletes every object it created."""
    thresholds = tmp_path / "t.json"
    thresholds.write_text('{"max_p95_ms": 200}')
    creds = tmp_path / "creds.yaml"
    creds.write_text("headers:\n  Authorization: Bearer real\n")
    play_cluster(kube, code=code, log=master_log(tmp_path, code))
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--report", str(tmp_path / "out"),
                                     "--thresholds", str(thresholds), "--credentials", str(creds)))
    assert rc == code
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == {
        "verdict": {"passed": code == 0}}
    assert (tmp_path / "out" / "report.html").read_text() == "<html>report</html>"
    created = [body for _, body in kube.sent("POST")]
    assert [(o["kind"], o["metadata"]["name"]) for o in created] == [
        ("Job", "rewind-t-1-master"), ("ConfigMap", "rewind-t-1"),
        ("Secret", "rewind-t-1-credentials"), ("Service", "rewind-t-1-master"),
        ("Job", "rewind-t-1-workers")]
    validate_all(created)
    assert all(o["metadata"]["labels"][RUN_LABEL] == RUN for o in created)
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "uid-rewind-t-1-master"
               for o in created[1:])
    workers = created[4]["spec"]
    assert (workers["completionMode"], workers["completions"], workers["parallelism"]) == ("Indexed", 2, 2)
    assert created[1]["data"]["thresholds.json"] == '{"max_p95_ms": 200}'
    assert created[2]["stringData"]["credentials.yaml"] == creds.read_text()
    args = created[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--credentials") + 1] == "/etc/rewind-credentials/credentials.yaml"
    assert left_over(kube) == {}
    assert_allowed_by_launcher_role(kube)
    deletes = [path for path, _ in kube.sent("DELETE")]
    assert deletes and all("propagationPolicy=Background" in p for p in deletes)
    err = capsys.readouterr().err
    assert err.count('[master] {"event": "replay.progress", "sent": 50}') == 1
    assert "KLUv" not in err  # the bundle itself is not echoed
    assert '"launch.pod"' in err and "Running" in err


def test_timeout_deletes_everything_and_exits_6(kube, tmp_path):
    """A master that never ends: at --timeout the launcher gives up with 6 and deletes the run."""
    play_cluster(kube, code=None, log=master_log(tmp_path, 0, bundle=False))
    t0 = time.monotonic()
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--timeout", "1s"))
    assert rc == 6
    assert time.monotonic() - t0 < 5
    assert left_over(kube) == {}


def test_pod_that_cannot_start_ends_the_wait(kube, tmp_path, capsys):
    """A master stuck on InvalidImageName is not waited for until the timeout: exit 6 at once,
    the reason logged, the run deleted."""
    play_cluster(kube, code=None, log=[], waiting="InvalidImageName")
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--timeout", "30s"))
    assert rc == 6
    assert "cannot start: InvalidImageName" in capsys.readouterr().err
    assert left_over(kube) == {}


def test_missing_report_is_no_verdict(kube, tmp_path, capsys):
    """The master passed but its log holds no bundle: with --report that is exit 6, not 0."""
    play_cluster(kube, code=0, log=master_log(tmp_path, 0, bundle=False))
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--report", str(tmp_path / "out")))
    assert rc == 6
    assert "no complete report bundle of run t-1" in capsys.readouterr().err
    assert left_over(kube) == {}


def test_master_job_failing_without_exit_code_is_no_verdict(kube, tmp_path, capsys):
    """The master Job hits its deadline before any Pod ran: 6, with the Job's reason."""
    def fail_job():
        while names(RUN)["workers"] not in kube.names("jobs", NS):
            time.sleep(0.02)
        kube.set_job_status(NS, names(RUN)["master"], {"conditions": [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline"}]})
    threading.Thread(target=fail_job, daemon=True).start()
    rc = launch_cli.main(launch_argv(kube, tmp_path))
    assert rc == 6
    assert "DeadlineExceeded" in capsys.readouterr().err
    assert left_over(kube) == {}


def test_api_errors_while_waiting_are_retried(kube, tmp_path, capsys):
    """The API answers 500 to Job reads for a while during the run: the launcher logs it once,
    keeps polling, and still gets the verdict and the report."""
    play_cluster(kube, code=1, log=master_log(tmp_path, 1), after=1.0)

    def outage():
        while names(RUN)["workers"] not in kube.names("jobs", NS):
            time.sleep(0.02)
        kube.fail[("GET", "jobs")] = 500
        time.sleep(0.6)
        kube.fail.clear()
    threading.Thread(target=outage, daemon=True).start()
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--report", str(tmp_path / "out")))
    assert rc == 1
    assert capsys.readouterr().err.count('"launch.api_error"') == 1
    assert (tmp_path / "out" / "summary.json").exists()
    assert left_over(kube) == {}


def test_forbidden_create_cleans_up_what_was_made(kube, tmp_path, capsys):
    """RBAC refuses the Service: exit 6 with one line naming the refusal, and the master Job
    and ConfigMap already made are deleted again."""
    kube.fail[("POST", "services")] = 403
    thresholds = tmp_path / "t.json"
    thresholds.write_text('{"max_error_rate": 0.01}')
    rc = launch_cli.main(launch_argv(kube, tmp_path, "--thresholds", str(thresholds)))
    assert rc == 6
    err = capsys.readouterr().err
    assert "cannot create Service rewind-t-1-master: HTTP 403" in err and "RBAC" in err
    assert [b["kind"] for _, b in kube.sent("POST")] == ["Job", "ConfigMap", "Service"]
    assert left_over(kube) == {}


def test_bad_replay_flags_exit_2_before_anything_is_created(kube, tmp_path, capsys):
    """A replay flag error (unknown --mode) and a launcher-owned flag among them (--report is
    rewind-launch's) both exit 2 and send nothing."""
    argv = launch_argv(kube, tmp_path)
    with pytest.raises(SystemExit) as exc:
        launch_cli.main([*argv, "--mode", "fastest"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        launch_cli.main([*argv[:-len(REPLAY)], "--external-workers", "3", *REPLAY])
    assert exc.value.code == 2
    assert "set by rewind-launch" in capsys.readouterr().err
    assert kube.sent("POST") == []


def test_unreachable_api_is_one_line_and_exit_6(tmp_path):
    """No API server at the kubeconfig's address: exit 6 with a one-line error, no traceback."""
    from tests.support.servers import free_port
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    out = subprocess.run([sys.executable, "-m", "replayer.launch.cli", "--kubeconfig", str(path),
                          "--log-format", "json", *REPLAY], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 6
    assert "Traceback" not in out.stderr
    assert '"launch.cluster_error"' in out.stderr and "cannot create Job" in out.stderr


def test_delete_removes_only_that_run(kube, tmp_path):
    """--delete RUN removes the Jobs, Service and ConfigMap labelled with RUN, not another run's."""
    for run in (RUN, "other"):
        for kind, res, name in (("Job", "batch/v1/jobs", names(run)["master"]),
                                ("Service", "v1/services", names(run)["service"]),
                                ("ConfigMap", "v1/configmaps", names(run)["config"]),
                                ("Secret", "v1/secrets", names(run)["secret"])):
            kube.call(kube.k.objects.__setitem__, (res, NS, name), {
                "kind": kind, "metadata": {"name": name, "namespace": NS, "labels": run_labels(run)}})
    rc = launch_cli.main(["--kubeconfig", str(kube.kubeconfig(tmp_path, NS)), "--delete", RUN])
    assert rc == 0
    assert left_over(kube) == {"jobs": ["rewind-other-master"], "services": ["rewind-other-master"],
                               "configmaps": ["rewind-other"], "secrets": ["rewind-other-credentials"]}
    assert_allowed_by_launcher_role(kube)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_deletes_the_run(kube, tmp_path, sig):
    """The real command in a subprocess, interrupted while the replay runs: it deletes every
    object of the run and exits 6."""
    play_cluster(kube, code=None, log=master_log(tmp_path, 0, bundle=False))
    proc = subprocess.Popen([sys.executable, "-m", "replayer.launch.cli",
                             *launch_argv(kube, tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(kube.names("pods", NS)) < 3 or len(kube.names("jobs", NS)) < 2:
            assert time.monotonic() < deadline, "the run was not created"
            time.sleep(0.05)
        time.sleep(0.3)
        assert len(left_over(kube)["jobs"]) == 2
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 6, err[-2000:]
    assert '"launch.interrupted"' in err and "Traceback" not in err
    assert left_over(kube) == {}


def test_dry_run_prints_valid_manifests_whose_commands_parse(tmp_path):
    """--dry-run (the real command, no cluster) prints YAML that validates strictly; the master's
    args parse in rewind-launch-master's and rewind-replay's parsers, the workers' in
    rewind-replay-worker's; relative --from is made absolute; credentials are not printed."""
    from replayer.launch import master as launch_master
    from replayer.engine import worker
    from replayer.replay import parser as replay_parser
    creds = tmp_path / "c.yaml"
    creds.write_text("headers: {Authorization: Bearer s3cret}\n")
    out = subprocess.run([sys.executable, "-m", "replayer.launch.cli", "--dry-run", "--run-id", RUN,
                          "--workers", "3", "--credentials", str(creds), "--from=-15m", *REPLAY],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    validate_all(docs)
    assert [d["kind"] for d in docs] == ["Job", "Secret", "Service", "Job"]
    master = docs[0]["spec"]["template"]["spec"]["containers"][0]
    wrapper = launch_master.build_parser().parse_args(master["args"])
    replay = replay_parser.build_parser().parse_args(wrapper.replay_args[1:])
    assert (replay.external_workers, replay.master_bind_port, replay.report) == (3, 5557, "/reports/t-1")
    assert replay.target == "http://candidate:8080" and replay.rps == 50
    assert abs(int(replay.from_) / 1e9 - (time.time() - 900)) < 60
    w = docs[3]["spec"]["template"]["spec"]["containers"][0]
    wargs = worker.build_parser().parse_args(w["args"])
    assert (w["command"], wargs.master_host, wargs.master_port) == (
        ["rewind-replay-worker"], docs[2]["metadata"]["name"], 5557)
    assert docs[2]["spec"]["selector"] == {RUN_LABEL: RUN, "rewind.dev/role": "master"}


def test_every_container_command_is_a_console_script_of_the_replayer_image():
    """The commands the Jobs run are [project.scripts] entries, which the replayer image installs
    with the rewind wheel, and the Pods run as the image's non-root user."""
    import tomllib

    from replayer.launch.manifests import LaunchSpec, build
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    docs = build(LaunchSpec(run_id=RUN, namespace=NS, image="i", workers=1, replay_args=()))
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Job"]
    commands = {c["command"][0] for p in pods for c in p["containers"]}
    assert commands == {"rewind-launch-master", "rewind-replay-worker"}
    assert commands <= set(scripts)
    dockerfile = (REPO / "ci" / "docker" / "replayer.Dockerfile").read_text()
    assert "-c /tmp/constraints.txt \"rewind[replay]\"" in dockerfile  # the wheel, with its scripts
    assert "USER 10001:10001" in dockerfile
    assert {p["securityContext"]["runAsUser"] for p in pods} == {10001}
