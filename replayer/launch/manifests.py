"""The Kubernetes objects of one distributed replay, as plain dicts (no API calls here).

One run, all labelled ``rewind.dev/run-id: RUN``:

* ``Job rewind-RUN-master``: one Pod running ``rewind-launch-master`` (``rewind-replay
  --external-workers N`` + the report bundle), the Locust master, listening on 5557;
* ``Service rewind-RUN-master``: how the workers reach it (selects the master Pod by run id
  and role);
* ``Job rewind-RUN-workers``: Indexed, N completions, N in parallel, each Pod one
  ``rewind-replay-worker --master-host rewind-RUN-master``;
* ``ConfigMap rewind-RUN`` (only with a thresholds file): mounted at /etc/rewind;
* ``Secret rewind-RUN-credentials`` (only with a credentials file): mounted at
  /etc/rewind-credentials.

Both Jobs have ``backoffLimit: 0`` (a replay is not retried behind the user's back),
``activeDeadlineSeconds`` (they end by themselves if nobody is watching) and
``ttlSecondsAfterFinished`` (finished Jobs are removed even if the launcher died). The chart
``charts/rewind-replay`` renders the same objects; tests hold the two to each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["LAUNCHER_RULES", "LaunchSpec", "MASTER_PORT", "RUN_ID", "build", "names", "run_labels",
           "with_owner"]

MASTER_PORT = 5557
METRICS_PORT = 9104  # rewind-replay --metrics-port in the master Pod: the live replay metrics
REPORTS = "/reports"  # the master's report volume (emptyDir, or --report-claim)
CONFIG_DIR = "/etc/rewind"
THRESHOLDS = f"{CONFIG_DIR}/thresholds.json"
SECRET_DIR = "/etc/rewind-credentials"
CREDENTIALS = f"{SECRET_DIR}/credentials.yaml"
RUN_LABEL = "rewind.dev/run-id"
ROLE_LABEL = "rewind.dev/role"
# a label value and part of DNS-1035 names "rewind-RUN-workers" (at most 63 characters)
# what rewind-launch does in its namespace (a Role; charts/rewind-replay renders it with rbac.create)
LAUNCHER_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["services", "configmaps", "secrets"],
     "verbs": ["create", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
RUN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class LaunchSpec:
    run_id: str
    namespace: str
    image: str
    workers: int
    replay_args: tuple[str, ...]  # rewind-replay flags, as the master runs them
    thresholds: str | None = None  # the thresholds file's JSON text
    credentials: str | None = None  # the credentials file's text (a Secret)
    deadline_s: int = 3600  # activeDeadlineSeconds of both Jobs
    ttl_s: int = 3600  # ttlSecondsAfterFinished
    report_claim: str | None = None  # a PVC for /reports instead of an emptyDir
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str | None = None
    worker_requests: dict = field(default_factory=dict)  # e.g. {"cpu": "1", "memory": "512Mi"}
    metrics_port: int = METRICS_PORT  # the master's live metrics, scraped while it runs; 0: off


def names(run_id: str) -> dict[str, str]:
    base = f"rewind-{run_id}"
    return {"master": f"{base}-master", "service": f"{base}-master", "workers": f"{base}-workers",
            "config": base, "secret": f"{base}-credentials"}


def run_labels(run_id: str, role: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": "rewind-replay",
              "app.kubernetes.io/managed-by": "rewind-launch", RUN_LABEL: run_id}
    if role:
        labels[ROLE_LABEL] = role
    return labels


def report_dir(run_id: str) -> str:
    return f"{REPORTS}/{run_id}"


def master_args(spec: LaunchSpec) -> list[str]:
    """The master container's args: the bundle wrapper, then rewind-replay's flags."""
    args = ["--run-id", spec.run_id, "--report-dir", report_dir(spec.run_id), "--",
            *spec.replay_args, "--external-workers", str(spec.workers),
            "--master-bind-port", str(MASTER_PORT), "--report", report_dir(spec.run_id)]
    if spec.thresholds is not None:
        args += ["--thresholds", THRESHOLDS]
    if spec.credentials is not None:
        args += ["--credentials", CREDENTIALS]
    if spec.metrics_port:
        args += ["--metrics-port", str(spec.metrics_port)]
    return args


def worker_args(run_id: str) -> list[str]:
    return ["--master-host", names(run_id)["service"], "--master-port", str(MASTER_PORT)]


def _meta(spec: LaunchSpec, name: str, role: str | None) -> dict:
    return {"name": name, "namespace": spec.namespace, "labels": run_labels(spec.run_id, role)}


def _pod_spec(spec: LaunchSpec, container: dict, volumes: list[dict]) -> dict:
    pod = {"restartPolicy": "Never",
           "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                               "seccompProfile": {"type": "RuntimeDefault"}},
           "containers": [{**container, "image": spec.image,
                           "imagePullPolicy": spec.image_pull_policy,
                           "securityContext": {"allowPrivilegeEscalation": False,
                                               "capabilities": {"drop": ["ALL"]}}}]}
    if volumes:
        pod["volumes"] = volumes
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return pod


def _job(spec: LaunchSpec, name: str, role: str, pod: dict, annotations: dict | None = None,
         **job_spec) -> dict:
    meta = {"labels": run_labels(spec.run_id, role)}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(spec, name, role),
            "spec": {**job_spec, "backoffLimit": 0, "activeDeadlineSeconds": spec.deadline_s,
                     "ttlSecondsAfterFinished": spec.ttl_s,
                     "template": {"metadata": meta, "spec": pod}}}


def scrape_annotations(port: int) -> dict[str, str]:
    """Prometheus' kubernetes_sd "annotations" convention, as the capture chart's pods have."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics"}


def build(spec: LaunchSpec) -> list[dict]:
    """Every object of the run, in creation order: master Job, ConfigMap, Secret, Service,
    workers."""
    n = names(spec.run_id)
    mounts = [{"name": "reports", "mountPath": REPORTS}]
    volumes = [{"name": "reports", **({"persistentVolumeClaim": {"claimName": spec.report_claim}}
                                      if spec.report_claim else {"emptyDir": {}})}]
    if spec.thresholds is not None:
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
        volumes.append({"name": "config", "configMap": {"name": n["config"]}})
    if spec.credentials is not None:
        mounts.append({"name": "credentials", "mountPath": SECRET_DIR, "readOnly": True})
        volumes.append({"name": "credentials", "secret": {"secretName": n["secret"]}})
    ports = [{"name": "locust", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    service_ports = [{"name": "locust", "port": MASTER_PORT, "targetPort": "locust", "protocol": "TCP"}]
    if spec.metrics_port:
        ports.append({"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"})
        service_ports.append({"name": "metrics", "port": spec.metrics_port,
                              "targetPort": "metrics", "protocol": "TCP"})
    master = {"name": "replay", "command": ["rewind-launch-master"], "args": master_args(spec),
              "ports": ports, "volumeMounts": mounts}
    worker = {"name": "worker", "command": ["rewind-replay-worker"],
              "args": worker_args(spec.run_id)}
    if spec.worker_requests:
        worker["resources"] = {"requests": dict(spec.worker_requests)}
    objs = [_job(spec, n["master"], "master", _pod_spec(spec, master, volumes),
                 scrape_annotations(spec.metrics_port) if spec.metrics_port else None,
                 completions=1, parallelism=1)]
    if spec.thresholds is not None:
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(spec, n["config"], None),
                     "data": {"thresholds.json": spec.thresholds}})
    if spec.credentials is not None:
        objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta(spec, n["secret"], None),
                     "type": "Opaque", "stringData": {"credentials.yaml": spec.credentials}})
    objs.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(spec, n["service"], "master"),
                 "spec": {"type": "ClusterIP", "selector": {RUN_LABEL: spec.run_id, ROLE_LABEL: "master"},
                          "ports": service_ports}})
    objs.append(_job(spec, n["workers"], "worker", _pod_spec(spec, worker, []),
                     completionMode="Indexed", completions=spec.workers, parallelism=spec.workers))
    return objs


def with_owner(obj: dict, owner: dict) -> dict:
    """``obj`` owned by the created master Job (uid from the API): deleting that Job, by hand
    or by its TTL, lets the garbage collector remove the Service, ConfigMap, Secret and the
    workers too."""
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "blockOwnerDeletion": False}
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [ref]}}
