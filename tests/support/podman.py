"""podman for the container tests (tests/containers): the CLI with this machine's settings, and
the rewind images, built once for each content of what goes into them.

``images()`` runs the real ``make images DOCKER=podman DEBIAN_IMAGE=debootstrap`` with a tag
that is a hash of every input (Dockerfiles, sources, constraints), so a second session with the
same checkout reuses the images, and a changed file rebuilds them. The chart's bundled Redis
image cannot be pulled here either: a Redis image is made from the same Debian base.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "ci" / "podman" / "containers.conf"
DEBIAN = "localhost/rewind/debian:bookworm"  # what `make images DEBIAN_IMAGE=debootstrap` makes
# What goes into the images: a change to any of these files rebuilds them.
INPUTS = ("ci/docker", "ci/podman", "ci/demo_api", "bpf", "sidecar", "replayer", "pyproject.toml",
          "constraints.txt", "README.md", ".dockerignore", "tests/containers/redis.Dockerfile")

__all__ = ["Images", "images", "podman", "unavailable"]


def env() -> dict[str, str]:
    """The environment podman runs with: ci/podman/containers.conf unless CONTAINERS_CONF is set."""
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF") or str(CONF)}


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """One podman command, its output captured as text; a failure raises with its stderr."""
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                         env=env())
    if check and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out


def unavailable() -> str | None:
    """Why containers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("podman") is None:
        return "podman is not installed (make host)"
    return None


@dataclass(frozen=True)
class Images:
    tag: str
    build_s: float  # seconds this session spent building (0: all were there)

    def ref(self, name: str) -> str:
        if name == "redis":
            return f"localhost/rewind-test/redis:{self.tag}"
        return f"localhost/rewind/{name}:{self.tag}"


def content_tag() -> str:
    h = hashlib.sha256()
    for top in INPUTS:
        path = REPO / top
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return "t-" + h.hexdigest()[:12]


def images() -> Images:
    """The sidecar, replayer, demo-api and test Redis images of this checkout (built if any is
    missing); images of other contents' tags, and build stages older than a day, are removed."""
    tag = content_tag()
    found = Images(tag, 0.0)
    names = ("sidecar", "replayer", "demo-api", "redis")
    if all(podman("image", "exists", found.ref(n), check=False).returncode == 0 for n in names):
        return found
    t0 = time.monotonic()
    make = subprocess.run(["make", "images", "DOCKER=podman", "DEBIAN_IMAGE=debootstrap",
                           f"IMAGE_TAG={tag}"], cwd=REPO, capture_output=True, text=True,
                          timeout=1800, env=env())
    if make.returncode != 0:
        raise RuntimeError(f"make images failed:\n{make.stdout[-2000:]}\n{make.stderr[-3000:]}")
    podman("build", "-q", "-f", "tests/containers/redis.Dockerfile", "--build-arg",
           f"DEBIAN={DEBIAN}", "-t", found.ref("redis"), "tests/containers", timeout=600)
    _remove_other_tags(tag)
    return Images(tag, time.monotonic() - t0)


def _remove_other_tags(keep: str) -> None:
    refs = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stale = [r for r in refs if r.rpartition(":")[2].startswith("t-") and not r.endswith(":" + keep)
             and r.split(":")[0].startswith(("localhost/rewind/", "localhost/rewind-test/"))]
    if stale:
        podman("rmi", "--force", *stale, check=False)
    # build stages of earlier builds (a day old: recent ones are the cache of the next build)
    podman("image", "prune", "--force", "--filter", "until=24h", check=False)
