"""The few Kubernetes API calls ``rewind-launch`` makes, over the official ``kubernetes`` client.

``Cluster(api_client, namespace)`` creates, reads, lists by run id and deletes the objects of
``launch_manifests``, and reads a Pod's log. Objects go in and come out as plain dicts (raw
JSON, ``_preload_content=False``), the same shape as the manifests. Every failure of the API
or of the connection is a ``ClusterError`` with a one-line message.
"""

from __future__ import annotations

import json
import os

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from replayer.launch.manifests import RUN_LABEL

__all__ = ["Cluster", "ClusterError", "connect"]

LISTED = ("Job", "Service", "ConfigMap")  # Secrets are deleted by name: no right to list them


class ClusterError(Exception):
    """The API refused a call or could not be reached."""


def connect(kubeconfig: str | None = None, context: str | None = None) -> tuple[client.ApiClient, str]:
    """An API client from --kubeconfig/--context, $KUBECONFIG or ~/.kube/config, else the Pod's
    service account (in-cluster); and the namespace that configuration names (else default)."""
    in_pod = os.environ.get("KUBERNETES_SERVICE_HOST") and not (
        kubeconfig or context or os.environ.get("KUBECONFIG")
        or os.path.exists(os.path.expanduser(config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION)))
    try:
        if not in_pod:
            cfg = client.Configuration()
            config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=cfg)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                active = next((c for c in contexts if c["name"] == context), None)
            namespace = (active or {}).get("context", {}).get("namespace") or "default"
        else:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
                namespace = f.read().strip() or "default"
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(f"no usable Kubernetes configuration: {exc}") from None
    cfg.retries = 2
    return client.ApiClient(cfg), namespace


def _why(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        hint = " (see docs/launch.md, RBAC)" if exc.status == 403 else ""
        return f"HTTP {exc.status}: {message}{hint}"
    return f"{type(exc).__name__}: {exc}"


class Cluster:
    def __init__(self, api: client.ApiClient, namespace: str, *, request_timeout: float = 20.0) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.timeout = request_timeout

    def _call(self, what: str, fn, *args, **kw):
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kw)
            return resp.data
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(f"{what}: {_why(exc)}") from None
        except ValueError as exc:  # the client's own check of a body (pydantic): our bug
            raise ClusterError(f"{what}: the client rejected the request: {exc}") from None

    def _json(self, what: str, fn, *args, **kw) -> dict:
        return json.loads(self._call(what, fn, *args, **kw) or b"{}")

    # -- create / delete -------------------------------------------------------------------
    def create(self, obj: dict) -> dict:
        kind, name = obj["kind"], obj["metadata"]["name"]
        fn = {"Job": self.batch.create_namespaced_job, "Service": self.core.create_namespaced_service,
              "ConfigMap": self.core.create_namespaced_config_map,
              "Secret": self.core.create_namespaced_secret}[kind]
        return self._json(f"cannot create {kind} {name}", fn, self.namespace, obj)

    def delete(self, kind: str, name: str) -> bool:
        """Delete one object (Jobs with their Pods); False when it was already gone."""
        fn = {"Job": self.batch.delete_namespaced_job, "Service": self.core.delete_namespaced_service,
              "ConfigMap": self.core.delete_namespaced_config_map,
              "Secret": self.core.delete_namespaced_secret}[kind]
        try:
            fn(name, self.namespace, propagation_policy="Background", _request_timeout=self.timeout,
               _preload_content=False)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ClusterError(f"cannot delete {kind} {name}: {_why(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterError(f"cannot delete {kind} {name}: {_why(exc)}") from None

    def of_run(self, run_id: str) -> list[tuple[str, str]]:
        """(kind, name) of every Job, Service and ConfigMap labelled with the run id."""
        selector = f"{RUN_LABEL}={run_id}"
        listers = {"Job": self.batch.list_namespaced_job, "Service": self.core.list_namespaced_service,
                   "ConfigMap": self.core.list_namespaced_config_map}
        found = []
        for kind in LISTED:
            items = self._json(f"cannot list {kind}s", listers[kind], self.namespace,
                               label_selector=selector).get("items") or []
            found += [(kind, o["metadata"]["name"]) for o in items
                      if (o["metadata"].get("labels") or {}).get(RUN_LABEL) == run_id]
        return found

    # -- reading ---------------------------------------------------------------------------
    def job(self, name: str) -> dict | None:
        try:
            return self._json(f"cannot read Job {name}", self.batch.read_namespaced_job, name,
                              self.namespace)
        except ClusterError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def pods(self, run_id: str) -> list[dict]:
        items = self._json("cannot list Pods", self.core.list_namespaced_pod, self.namespace,
                           label_selector=f"{RUN_LABEL}={run_id}").get("items") or []
        return [p for p in items if (p["metadata"].get("labels") or {}).get(RUN_LABEL) == run_id]

    def log(self, pod: str, container: str, *, since_s: int | None = None,
            timestamps: bool = False) -> str:
        kw = {"container": container, "timestamps": timestamps}
        if since_s is not None:
            kw["since_seconds"] = since_s
        data = self._call(f"cannot read the log of Pod {pod}", self.core.read_namespaced_pod_log,
                          pod, self.namespace, **kw)
        return data.decode("utf-8", errors="replace")
