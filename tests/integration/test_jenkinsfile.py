"""The Jenkinsfile, linted by the real npm-groovy-lint (CodeNarc + the Groovy parser; `make
jenkins-lint` installs it into .tools/npm, it needs npm and Java) and held to the repository:
every `make X` it runs is a Makefile target, every rewind-* command a console script. A linter
that cannot run fails these tests."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "Jenkinsfile"
LINTER = ROOT / ".tools" / "npm" / "node_modules" / ".bin" / "npm-groovy-lint"
BROKEN = 'pipeline {\n  agent any\n  stages {\n    stage("x") {\n      steps {\n        sh "make lint"\n}\n'


@functools.cache
def groovy_lint() -> str:
    """npm-groovy-lint from .tools/npm, installed there on first use (`make jenkins-lint` does
    the same); fail if it cannot be had."""
    if not LINTER.is_file():
        if not (shutil.which("npm") and shutil.which("java")):
            pytest.fail("npm-groovy-lint needs npm and java")
        subprocess.run(["make", "-C", str(ROOT), str(LINTER.relative_to(ROOT))], check=True, timeout=600)
    if not LINTER.is_file():
        pytest.fail("npm-groovy-lint not installed: make jenkins-lint")
    return str(LINTER)


@pytest.fixture(scope="module")
def lint_report(tmp_path_factory) -> dict:
    """One linter run over a copy of the Jenkinsfile and a broken pipeline, side by side (files
    in one folder: the linter scans from their common base folder)."""
    folder = tmp_path_factory.mktemp("groovy-lint")
    shutil.copy(JENKINSFILE, folder / "Jenkinsfile")
    (folder / "broken.Jenkinsfile").write_text(BROKEN)
    out = subprocess.run([groovy_lint(), "--noserver", "--failon", "error", "--output", "json",
                          "Jenkinsfile", "broken.Jenkinsfile"],
                         cwd=folder, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip(), f"npm-groovy-lint did not run: {out.stderr}"
    report = json.loads(out.stdout)
    return {Path(name).name: [e for e in v["errors"] if e["severity"] == "error"]
            for name, v in report["files"].items()}


def test_jenkinsfile_has_no_lint_errors(lint_report):
    """npm-groovy-lint --failon error finds nothing at error level (warnings are allowed: the
    declarative syntax nests deeper than CodeNarc's default)."""
    assert lint_report["Jenkinsfile"] == []


def test_linter_catches_a_broken_pipeline(lint_report):
    """An unbalanced brace is a parse error: the lint is not vacuous."""
    assert [e["rule"] for e in lint_report["broken.Jenkinsfile"]] == ["NglParseError"]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


def pipeline_code() -> str:
    """The Jenkinsfile without its // comment lines."""
    return "\n".join(line for line in JENKINSFILE.read_text().splitlines()
                     if not line.strip().startswith("//"))


def test_every_make_target_exists():
    """Each `make X` the pipeline calls is a target of the Makefile."""
    called = set(re.findall(r"\bmake\s+([A-Za-z][\w-]*)", pipeline_code()))
    assert {"lint", "test-unit", "chart-test", "images"} <= called
    assert called - makefile_targets() == set()


def test_every_rewind_command_is_a_console_script():
    """Each rewind-* program the pipeline runs is in [project.scripts]; the replay goes through
    rewind-launch (Kubernetes Jobs), never rewind-replay on the agent."""
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    # a program is followed by its arguments (not the Redis host rewind-redis: or a credentials id)
    called = set(re.findall(r"\b(rewind-[a-z]+)\s", pipeline_code()))
    assert called == {"rewind-launch"}
    assert called - scripts == set()


def test_replay_runs_as_jobs_and_post_always_deletes_them():
    """The Replay stage calls rewind-launch with a run id, the ramp mode has its parameters, and
    post { always } deletes the run's Jobs by that id (rewind-launch --delete)."""
    text = JENKINSFILE.read_text()
    assert "choices: ['recorded', 'rps', 'max', 'ramp']" in text
    for param in ("RAMP_START", "RAMP_STEP", "RAMP_MAX", "STEP_DURATION", "SLO", "NAMESPACE"):
        assert re.search(rf"name: '{param}'", text), param
    assert "--run-id '${env.REWIND_RUN_ID}'" in text and "--report ${env.REPORT_DIR}" in text
    always = text[text.rindex("    post {"):]
    always = always[always.index("always {"):always.index("failure {")]
    delete = always.index("--delete '${env.REWIND_RUN_ID}'")
    assert always.rindex("rewind-launch", 0, delete) < delete < always.index("cleanWs(")
    assert "'6': " in text


def test_pipeline_shape():
    """Parameters, stages, reports, verdict, cleanup and the nightly trigger are all there."""
    text = JENKINSFILE.read_text()
    for param in ("STREAM", "FROM", "TO", "LAST_MINUTES", "TARGET_URL", "MODE", "SPEED", "RPS",
                  "WORKERS", "THRESHOLDS"):
        assert re.search(rf"name: '{param}'", text), param
    for stage in ("Checkout", "Lint", "Unit tests", "Chart tests", "Build and push images", "Replay",
                  "Verdict"):
        assert f"stage('{stage}')" in text, stage
    assert "parallel {" in text
    assert "--report ${env.REPORT_DIR}" in text and "REPORT_DIR = 'out/replay'" in text
    assert "junit allowEmptyResults: true, testResults: 'out/replay/junit.xml'" in text
    assert "publishHTML" in text and "archiveArtifacts" in text
    assert "returnStatus: true" in text and "error(" in text
    assert re.search(r"triggers\s*\{[^}]*cron\('", text)
    assert re.search(r"\n    post\s*\{\s*always\s*\{(?:(?!\n        \}).)*cleanWs", text, re.S)
