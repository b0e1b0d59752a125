"""The rewind images in real containers (podman), run the way the Helm chart runs them. These
tests need root and podman: without either they skip, and fail instead under
REWIND_REQUIRE_BPF=1 (CI), like the BPF tests. The images are built once per content
(tests/support/podman.py); the first session on a fresh machine builds them (a few minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REQUIRE_BPF
from tests.support import podman as pm

HERE = Path(__file__).parent
CHART = HERE.parents[1] / "charts" / "rewind-capture"


def pytest_runtest_setup(item):
    reason = pm.unavailable()
    if reason is None:
        return
    if REQUIRE_BPF:
        pytest.fail(f"container test cannot run ({reason}) and REWIND_REQUIRE_BPF=1", pytrace=False)
    pytest.skip(f"container test skipped: {reason}")


@pytest.fixture(scope="session")
def images() -> pm.Images:
    """The sidecar, replayer, demo-api and test Redis images of this checkout."""
    if pm.unavailable():
        pytest.skip(pm.unavailable())
    built = pm.images()
    print(f"\nimages {built.tag}: built in {built.build_s:.0f}s" if built.build_s
          else f"\nimages {built.tag}: already built", file=sys.stderr)
    return built


def render(images: pm.Images, release: str, *sets: str) -> list[dict]:
    """`helm template` of charts/rewind-capture with the images of this checkout (what a user
    with a private registry sets), helm's test hooks left out."""
    from tests.integration.test_chart import helm_binary

    image_sets = [f"image.repository={images.ref('sidecar').rsplit(':', 1)[0]}",
                  f"image.tag={images.tag}",
                  f"example.image.repository={images.ref('demo-api').rsplit(':', 1)[0]}",
                  f"example.image.tag={images.tag}",
                  f"redis.image.repository={images.ref('redis').rsplit(':', 1)[0]}",
                  f"redis.image.tag={images.tag}"]
    args = [helm_binary(), "template", release, str(CHART), "--skip-tests"]
    for s in [*image_sets, *sets]:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: list[dict], kind: str, suffix: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc
