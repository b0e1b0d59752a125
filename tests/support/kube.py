"""A Kubernetes API for launcher tests: the kmock emulator (PyPI ``kmock``) served over real HTTP
on loopback from a background thread, plus what a test needs to play the cluster's part.

    with KubeEmulator() as kube:
        kubeconfig = kube.kubeconfig(tmp_path, namespace="replay")   # a real kubeconfig file
        kube.put_pod("replay", "p-0", labels, phase="Running", state={"running": {}})
        kube.log_lines["p-0"] = ["line 1", "line 2"]                 # served by pods/log
        kube.sent("POST")                                            # every object created

The emulator stores what is created, lists it, deletes it; it does not run a Job controller,
so the test creates the Pods and their states itself. Log lines get a timestamp each (served
with ``timestamps=true``); ``sinceSeconds`` is ignored (the launcher must cope with lines it
has already seen). ``fail[(method, plural)] = status`` answers such requests with that status.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import kmock
import yaml

__all__ = ["KubeEmulator"]

RESOURCES = ("v1/pods", "v1/services", "v1/configmaps", "v1/secrets", "batch/v1/jobs")


class KubeEmulator:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.log_lines: dict[str, list[str]] = {}
        self.fail: dict[tuple[str, str], int] = {}
        self._stamps: dict[str, list[str]] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""
        self.k: kmock.KubernetesEmulator | None = None

    def __enter__(self) -> KubeEmulator:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("kmock did not start")
        self.call(self._script)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k, kmock.Server(k) as server:
            self.k, self.url = k, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def call(self, fn, *args):
        """Run ``fn(*args)`` in the emulator's thread (its state is not thread-safe)."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    # -- scripting ---------------------------------------------------------------------------
    def _script(self) -> None:
        k = self.k
        for res in RESOURCES:
            k.resources[res] = {}
        k[self._failing] << self._fail_answer
        k[kmock.resource("v1/pods"), kmock.subresource("log")] << self._serve_log
        # the API server gives every new object a uid (kmock stores the body as it came)
        k["post", kmock.resource("batch/v1/jobs")] << (
            lambda req: {**req.data, "metadata": {**req.data["metadata"],
                                                  "uid": f"uid-{req.data['metadata']['name']}"}})

    def _failing(self, req) -> bool:
        return req.resource is not None and (str(req.method).rsplit(".", 1)[-1].upper(),
                                             req.resource.plural) in self.fail

    def _fail_answer(self, req):
        status = self.fail[(str(req.method).rsplit(".", 1)[-1].upper(), req.resource.plural)]
        raise kmock.KubernetesError(status=status, reason="Forbidden" if status == 403 else "Error",
                                    message=f"emulated {status} for {req.method} {req.resource.plural}")

    def _serve_log(self, req) -> bytes:
        lines = self.log_lines.get(req.name, [])
        stamps = self._stamps.setdefault(req.name, [])
        while len(stamps) < len(lines):
            stamps.append(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z")
        if req.params.get("timestamps") == "true":
            lines = [f"{ts} {line}" for ts, line in zip(stamps, lines, strict=False)]
        return "".join(line + "\n" for line in lines).encode()

    def put_pod(self, namespace: str, name: str, labels: dict, *, phase: str, state: dict,
                image: str = "rewind/replayer:test") -> None:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace, "labels": labels,
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "status": {"phase": phase,
                          "containerStatuses": [{"name": "c", "image": image, "state": state}]}}
        self.call(self.k.objects.__setitem__, ("v1/pods", namespace, name), pod)

    def set_job_status(self, namespace: str, name: str, status: dict) -> None:
        def patch():
            self.k.objects["batch/v1/jobs", namespace, name].patch({"status": status})
        self.call(patch)

    # -- reading -----------------------------------------------------------------------------
    def sent(self, method: str) -> list[tuple[str, dict]]:
        """(path with query, body) of every request with this HTTP method, in order."""
        def collect():
            return [(str(r.url.path_qs), r.data) for r in self.k
                    if str(r.method).rsplit(".", 1)[-1].upper() == method]
        return self.call(collect)

    def names(self, plural: str, namespace: str) -> list[str]:
        """Names of the objects of a resource that exist now (not deleted)."""
        def collect():
            return [key[2] for key, obj in self.k.objects.items()
                    if key[0].plural == plural and key[1] == namespace and not obj.deleted]
        return self.call(collect)

    def kubeconfig(self, folder: Path, namespace: str = "default") -> Path:
        path = folder / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester",
                                                        "namespace": namespace}}]}))
        return path
