"""The capture chart, for real: `helm template charts/rewind-capture` (example API with the
sidecar in its pod, bundled Redis, archiver on a PersistentVolumeClaim) played with podman, with
the chart's defaults for what the sidecar needs (capabilities, seccomp Unconfined, the image's
kernel headers: no host headers mounted). Traffic to the API ends up in Redis byte-exact, the
archiver of the rendered spec archives it, and the replayer image replays the archived range
against the API. The scheduled capture (CronJob pod, host PID namespace) and the runtime's
default seccomp profile are tested on the same stack."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from dataclasses import dataclass

import pytest
import redis

from tests.containers.conftest import find, render
from tests.support.archive import archive_contents, check_manifest, stream_entry_ids, wait_for
from tests.support.capture import StreamReader
from tests.support.kube_play import Cluster
from tests.support.podman import podman
from tests.support.rawhttp import read_responses, request

RELEASE = "rw"
NAME = f"{RELEASE}-rewind-capture"
PORT = 8080


@dataclass
class Stack:
    cluster: Cluster
    docs: list[dict]
    api_ip: str
    redis: redis.Redis
    reader: StreamReader
    ready: dict  # the sidecar's capture.ready log line


@pytest.fixture(scope="module")
def stack(images):
    """The rendered example, Redis and archiver, running; torn down after the module."""
    docs = render(images, RELEASE, "example.enabled=true", "archiver.enabled=true",
                  "archiver.extraArgs={--segment-seconds,2s}")
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    cluster = Cluster("chart")
    try:
        cluster.play([find(docs, "Deployment", "-redis")])
        redis_ip = cluster.serve(find(docs, "Service", "-redis"), deployments)
        client = redis.Redis(host=redis_ip, port=6379, socket_timeout=10)
        assert wait_for(lambda: _pings(client), 60), "Redis did not answer"
        cluster.play([find(docs, "PersistentVolumeClaim", "-archiver"),
                      find(docs, "Deployment", "-example"), find(docs, "Deployment", "-archiver")])
        api_ip = cluster.serve(find(docs, "Service", "-example"), deployments)
        sidecar = f"{cluster.pod(NAME + '-example')}-rewind-capture"
        log = cluster.wait_log(sidecar, '"capture.started"', timeout=180)
        ready = next(json.loads(line) for line in log.splitlines() if '"capture.ready"' in line)
        assert wait_for(lambda: _healthy(api_ip), 60), "the example API did not come up"
        yield Stack(cluster, docs, api_ip, client, StreamReader(client, "api"), ready)
    finally:
        cluster.down()


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


def _healthy(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{PORT}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def exchange(ip: str, raws: list[bytes], pipelined: bool = False) -> list[bytes]:
    """Send requests on one keep-alive connection; the response bodies received."""
    s = socket.create_connection((ip, PORT), timeout=20)
    bodies = []
    if pipelined:
        s.sendall(b"".join(raws))
        bodies = [bytes(r.body) for r in read_responses(s, len(raws))]
    else:
        for raw in raws:
            s.sendall(raw)
            bodies += [bytes(r.body) for r in read_responses(s, 1)]
    s.close()
    return bodies


def send_mix(ip: str, tag: str) -> list[tuple[bytes, bytes]]:
    """Keep-alive, pipelined, binary and multi-chunk requests: (request bytes, response body)."""
    sent = []
    keep = [request("GET", f"/echo/{tag}/ka/{i}?q={i}", headers=[("X-Seq", str(i))]) for i in range(5)]
    sent += list(zip(keep, exchange(ip, keep), strict=True))
    pipe = [request("POST", f"/echo/{tag}/pipe/{i}", b"p" * (i * 100)) for i in range(3)]
    sent += list(zip(pipe, exchange(ip, pipe, pipelined=True), strict=True))
    binary = [request("PUT", f"/echo/{tag}/bin", bytes(range(256)) * 4,
                      [("Content-Type", "application/octet-stream")])]
    sent += list(zip(binary, exchange(ip, binary), strict=True))
    big = [request("POST", f"/echo/{tag}/big", b"B" * 200_000)]
    sent += list(zip(big, exchange(ip, big), strict=True))
    return sent


def records_of(stack: Stack, tag: str, n: int, node: str | None = None):
    recs = stack.reader.wait(lambda r: r.target.startswith(f"/echo/{tag}/")
                             and (node is None or r.conn.startswith(node + ":")), n, timeout=60)
    return sorted(recs, key=lambda r: (r.conn, r.seq))


def test_every_request_reaches_redis_byte_exact(stack):
    """In the API's pod, with shareProcessNamespace and the chart's defaults (no host headers,
    seccomp Unconfined, capabilities), the sidecar captures every request and its response
    byte-exact, naming the API's processes by their pids in the pod."""
    assert stack.ready["pid_namespace"] == "own"
    assert stack.ready["kernel_headers"] == "/opt/rewind/kernel-headers from image"
    assert stack.ready["processes"] and max(stack.ready["processes"]) < 100  # pod pids
    sent = send_mix(stack.api_ip, "main")
    recs = records_of(stack, "main", len(sent))
    pod = stack.cluster.pod(NAME + "-example")
    mine = [r for r in recs if r.conn.startswith(pod + ":")]
    assert sorted((r.request_bytes(), r.resp_body) for r in mine) == sorted(sent)
    assert all(r.status == 200 and not r.truncated for r in mine)
    assert {int(r.conn.split(":")[1]) for r in mine} <= set(stack.ready["processes"])


def test_archiver_from_the_rendered_spec_archives_the_stream(stack):
    """The archiver Deployment (its PersistentVolumeClaim a podman volume) archives every entry
    of the stream exactly once, listed in its manifest."""
    send_mix(stack.api_ip, "arch")
    records_of(stack, "arch", 10)
    root = stack.cluster.volume_path(f"{NAME}-archiver") / "api"
    ids = stream_entry_ids(stack.redis, "api")
    assert wait_for(lambda: set(archive_contents(root)) >= set(ids), 60), \
        stack.cluster.logs(f"{stack.cluster.pod(NAME + '-archiver')}-archiver")[-3000:]
    assert all(n == 1 for n in archive_contents(root).values())
    # the archiver keeps running (the example's health checks are captured too): a segment it
    # is committing is on disk a moment before the manifest lists it
    assert wait_for(lambda: _manifest_matches(root), 30), check_manifest(root)


def _manifest_matches(root) -> bool:
    try:
        check_manifest(root)
    except AssertionError:
        return False
    return True


def test_replayer_image_replays_the_archived_range(stack, images, tmp_path):
    """The replayer image reads the archive (the archiver's volume, read-only) and replays the
    range against the API: every request is answered as recorded and the report is written."""
    send_mix(stack.api_ip, "replay")
    records_of(stack, "replay", 10)
    root = stack.cluster.volume_path(f"{NAME}-archiver")
    ids = set(stream_entry_ids(stack.redis, "api"))
    assert wait_for(lambda: set(archive_contents(root / "api")) >= ids, 60)
    stack.reader.poll()
    recorded = [r for r in stack.reader.records if r.target.startswith("/echo/")]
    out = tmp_path / "report"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # the image's user (uid 10001) writes the report
    run = podman("run", "--rm", "--network", "podman-default-kube-network",
                 "-v", f"{root}:/archive:ro", "-v", f"{out}:/out", images.ref("replayer"),
                 "--source", "/archive", "--stream", "api", "--from", "-1h", "--to", "now",
                 "--target", f"http://{stack.api_ip}:{PORT}", "--mode", "max",
                 "--include", "^/echo/", "--host-header", "keep", "--report", "/out",
                 "--log-format", "json",
                 check=False, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "report.html").is_file()
    tot = summary["totals"]
    assert tot["sent"] == len(recorded) >= 10, tot
    assert (tot["errors"], tot["status_mismatches"], tot["body_mismatch_rate"]) == (0, 0, 0.0), tot


def test_scheduled_capture_pod_captures_with_host_pid(stack, images):
    """The CronJob's pod spec (host PID and network namespaces, here with the node's headers
    mounted: sidecar.hostHeaders) captures the example API's requests byte-exact, naming its
    processes by their host pids."""
    cron = find(render(images, RELEASE, "schedule.enabled=true", "schedule.window=5m",
                       "sidecar.hostHeaders=true"), "CronJob", "-schedule")
    pod_name = f"{cron['metadata']['name']}-manual"
    container = stack.cluster.run(pod_name, cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    log = stack.cluster.wait_log(container, '"capture.started"', timeout=180)
    ready = next(json.loads(line) for line in log.splitlines() if '"capture.ready"' in line)
    assert ready["pid_namespace"] == "host" and ready["kernel_headers"].endswith("from host")
    api = stack.cluster.pod(NAME + "-example") + "-api"
    gunicorn_host_pid = int(podman("inspect", api, "--format", "{{.State.Pid}}").stdout)
    assert gunicorn_host_pid in ready["processes"]
    time.sleep(0.5)
    sent = send_mix(stack.api_ip, "cron")
    recs = records_of(stack, "cron", len(sent), node=pod_name)
    assert sorted((r.request_bytes(), r.resp_body) for r in recs) == sorted(sent)
    assert {int(r.conn.split(":")[1]) for r in recs} <= set(ready["processes"])


def test_runtime_default_seccomp_stops_the_sidecar_naming_seccomp(images):
    """With the runtime's default seccomp profile (sidecar.seccompProfile: RuntimeDefault here),
    which refuses bpf() without CAP_SYS_ADMIN, the sidecar exits 3 and its log names seccomp
    and the chart value, not kernel headers."""
    docs = render(images, "rwsec", "example.enabled=true", "sidecar.seccompProfile.type=RuntimeDefault")
    cluster = Cluster("seccomp")
    try:
        cluster.play([find(docs, "Deployment", "-example")])
        name = f"{cluster.pod('rwsec-rewind-capture-example')}-rewind-capture"
        log = cluster.wait_log(name, '"capture.probe_failed"', timeout=120)
        line = next(json.loads(x) for x in log.splitlines() if '"capture.probe_failed"' in x)
        assert "seccomp" in line["error"] and "sidecar.seccompProfile" in line["error"]
        assert "header" not in line["error"]
        codes = set()  # the container is restarted (restartPolicy Always): watch its exit code

        def exited() -> bool:
            codes.add(podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip())
            return codes != {"0"}

        assert wait_for(exited, 30, interval=0.2)
        assert codes - {"0"} == {"3"}
    finally:
        cluster.down()


IMAGE_SCRIPTS = {  # image -> the console scripts it is for, the packages they import
    "sidecar": (("rewind-capture", "rewind-archive"),
                ("sidecar.capture", "sidecar.archive", "sidecar.redact", "sidecar.common",
                 "sidecar.contract")),
    "replayer": (("rewind-replay", "rewind-replay-worker", "rewind-launch", "rewind-launch-master",
                  "rewind-inspect", "rewind-archive"),
                 ("replayer", "sidecar.archive", "sidecar.common", "sidecar.contract")),
}
# only the replayer decodes br bodies (its judge and correlate import this module)
NOT_IN_SIDECAR = {"sidecar.contract.content_coding"}
IMPORT_ALL = """
import importlib, pkgutil, sys
skip = set(sys.argv[1].split(","))
for pkg in sys.argv[2:]:
    for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        if info.name not in skip:
            try:
                importlib.import_module(info.name)
            except Exception as exc:
                print("FAILED", info.name, repr(exc))
"""


@pytest.mark.parametrize("image", sorted(IMAGE_SCRIPTS))
def test_each_console_script_runs_in_its_image(images, image):
    """Each console script an image is for starts (--help), and every module of the packages
    they use imports: the image's dependencies (core, or the replay extra) and what its build
    trims are enough."""
    scripts, packages = IMAGE_SCRIPTS[image]
    lines = [f"{script} --help >/dev/null || echo FAILED {script}" for script in scripts]
    skip = ",".join(NOT_IN_SIDECAR) if image == "sidecar" else "-"
    lines.append(f"python -c '{IMPORT_ALL}' {skip} {' '.join(packages)}")
    run = podman("run", "--rm", "--entrypoint", "sh", images.ref(image), "-c", "\n".join(lines))
    assert "FAILED" not in run.stdout, run.stdout + run.stderr[-3000:]
