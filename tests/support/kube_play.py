"""Rendered Kubernetes manifests, run with podman: ``podman kube play`` for what it supports
(Deployments, PersistentVolumeClaims, shareProcessNamespace, capabilities, hostPath, downward-API
env), and a translation, in code, of exactly what podman 4.3 does not support, taken from the
rendered YAML (never a hand-written copy of the spec):

* a Service: its name resolves (``hostAliases``) to the IP of the pod its selector picks;
* a container port without ``hostPort``: podman would publish it on the host (Kubernetes does
  not; two pods with port 8080 could not both start), so it is left out;
* ``securityContext.seccompProfile``: the per-container seccomp annotation podman reads;
* a CronJob's pod, whose ``hostPID`` kube play ignores: ``podman run`` of its container with the
  same image, command, env, user, capabilities, seccomp, mounts and host namespaces.

Anything else in a pod spec that is not handled fails the translation instead of being dropped.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import yaml

from tests.support.podman import podman

NETWORK = "podman-default-kube-network"
_SECCOMP = {"Unconfined": "unconfined", "RuntimeDefault": "runtime/default"}
# pod spec keys the translation knows; scheduling ones mean nothing on one machine
_POD_KEYS = {"containers", "volumes", "hostPID", "hostNetwork", "dnsPolicy", "restartPolicy",
             "shareProcessNamespace", "nodeSelector", "tolerations", "imagePullSecrets"}

__all__ = ["Cluster", "matches", "seccomp_annotations"]


def seccomp_annotations(pod_spec: dict) -> dict[str, str]:
    """securityContext.seccompProfile of each container as the annotation podman reads."""
    out = {}
    for c in pod_spec["containers"]:
        profile = (c.get("securityContext") or {}).get("seccompProfile")
        if profile:
            kind = profile["type"]
            out[f"container.seccomp.security.alpha.kubernetes.io/{c['name']}"] = (
                f"localhost/{profile['localhostProfile']}" if kind == "Localhost" else _SECCOMP[kind])
    return out


def matches(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


class Cluster:
    """What one test played; ``down()`` removes all of it (pods, run containers, volumes)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._dir = Path(tempfile.mkdtemp(prefix=f"rewind-kube-{prefix}-"))
        self._files: list[Path] = []
        self._containers: list[str] = []
        self._volumes: list[str] = []
        self.hosts: dict[str, str] = {}  # Service name -> IP of the pod it selects

    # -- Deployments and PVCs -----------------------------------------------------------------
    def play(self, docs: list[dict]) -> None:
        """Deployments (and PersistentVolumeClaims) with kube play, after translating the pod
        templates (seccomp, the Services known so far)."""
        played = []
        for d in docs:
            if d["kind"] == "PersistentVolumeClaim":
                self._volumes.append(d["metadata"]["name"])
                played.append(d)
            elif d["kind"] == "Deployment":
                d = copy.deepcopy(d)
                tpl = d["spec"]["template"]
                _check_keys(tpl["spec"])
                tpl["metadata"].setdefault("annotations", {}).update(seccomp_annotations(tpl["spec"]))
                for c in tpl["spec"]["containers"]:
                    _unpublish(c)
                if self.hosts:
                    tpl["spec"]["hostAliases"] = [{"ip": ip, "hostnames": [n]}
                                                  for n, ip in self.hosts.items()]
                played.append(d)
            else:
                raise ValueError(f"Cluster.play: {d['kind']} is not for kube play")
        path = self._dir / f"{len(self._files)}.yaml"
        path.write_text(yaml.safe_dump_all(played))
        self._files.append(path)
        podman("kube", "play", "--network", NETWORK, str(path), timeout=300)

    def pod(self, deployment: str) -> str:
        return f"{deployment}-pod-0"  # how kube play names a Deployment's (one) pod

    def pod_ip(self, deployment: str) -> str:
        infra = podman("pod", "inspect", self.pod(deployment), "--format",
                       "{{.InfraContainerID}}").stdout.strip()
        nets = json.loads(podman("inspect", infra, "--format", "{{json .NetworkSettings.Networks}}").stdout)
        return nets[NETWORK]["IPAddress"]

    def serve(self, service: dict, deployments: list[dict]) -> str:
        """A Service: its name now resolves, for pods played later, to the IP of the pod its
        selector picks."""
        sel = service["spec"]["selector"]
        (dep,) = [d for d in deployments if matches(sel, d["spec"]["template"]["metadata"]["labels"])]
        ip = self.pod_ip(dep["metadata"]["name"])
        self.hosts[service["metadata"]["name"]] = ip
        return ip

    def logs(self, name: str) -> str:
        out = podman("logs", name, check=False)
        return out.stdout + out.stderr

    def volume_path(self, claim: str) -> Path:
        return Path(podman("volume", "inspect", claim, "--format", "{{.Mountpoint}}").stdout.strip())

    # -- a pod spec kube play cannot run (hostPID) ----------------------------------------------
    def run(self, pod_name: str, pod_spec: dict) -> str:
        """``podman run`` of the pod's one container, translated field by field; returns the
        container name."""
        _check_keys(pod_spec)
        (c,) = pod_spec["containers"]
        name = f"{self.prefix}-{pod_name}-{c['name']}"
        args = ["run", "-d", "--name", name]
        args += ["--pid", "host"] if pod_spec.get("hostPID") else []
        args += ["--network", "host" if pod_spec.get("hostNetwork") else NETWORK]
        args += [f"--add-host={n}:{ip}" for n, ip in self.hosts.items()]
        sc = c.get("securityContext") or {}
        if "runAsUser" in sc:
            args += ["--user", str(sc["runAsUser"])]
        if sc.get("privileged"):
            args.append("--privileged")
        args += [f"--cap-add={cap}" for cap in (sc.get("capabilities") or {}).get("add", [])]
        args += [f"--cap-drop={cap}" for cap in (sc.get("capabilities") or {}).get("drop", [])]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        profile = sc.get("seccompProfile")
        if profile and profile["type"] != "RuntimeDefault":
            args += ["--security-opt", "seccomp=" + ("unconfined" if profile["type"] == "Unconfined"
                                                     else profile["localhostProfile"])]
        for e in c.get("env", []):
            if "value" in e:
                args += ["-e", f"{e['name']}={e['value']}"]
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                args += ["-e", f"{e['name']}={pod_name}"]
            else:
                raise ValueError(f"env {e['name']}: only values and metadata.name are translated")
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            host = volumes[m["name"]].get("hostPath")
            if host is None:
                raise ValueError(f"volume {m['name']}: only hostPath volumes are translated")
            if host.get("type") == "Directory" and not Path(host["path"]).is_dir():
                raise ValueError(f"hostPath {host['path']} is not a directory (the pod would not start)")
            args += ["-v", f"{host['path']}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
        args += ["--entrypoint", json.dumps(c["command"]), c["image"], *c.get("args", [])]
        podman(*args)
        self._containers.append(name)
        return name

    def wait_log(self, name: str, text: str, timeout: float = 120) -> str:
        """The container's log once it holds ``text`` (fails with the log after ``timeout``, or
        once the container has stopped without it)."""
        deadline = time.monotonic() + timeout
        while True:
            running = podman("inspect", name, "--format", "{{.State.Running}}", check=False).stdout
            log = self.logs(name)
            if text in log:
                return log
            if time.monotonic() > deadline or running.strip() == "false":
                raise AssertionError(f"no {text!r} in the log of {name} within {timeout}s:\n{log[-4000:]}")
            time.sleep(0.5)

    def down(self) -> None:
        for name in self._containers:
            podman("rm", "--force", "--time", "5", name, check=False)
        for path in reversed(self._files):
            podman("kube", "down", str(path), check=False, timeout=120)
        for vol in self._volumes:
            podman("volume", "rm", "--force", vol, check=False)


def _unpublish(container: dict) -> None:
    """Keep only the ports Kubernetes binds on the node (hostPort); named ports that probes
    use become numbers."""
    ports = container.pop("ports", [])
    named = {p["name"]: p["containerPort"] for p in ports if "name" in p}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = (container.get(probe) or {}).get("httpGet")
        if get and get.get("port") in named:
            get["port"] = named[get["port"]]
    kept = [p for p in ports if "hostPort" in p]
    if kept:
        container["ports"] = kept


def _check_keys(pod_spec: dict) -> None:
    unknown = set(pod_spec) - _POD_KEYS
    if unknown:
        raise ValueError(f"pod spec fields with no podman translation: {sorted(unknown)}")
