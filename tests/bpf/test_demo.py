"""`make demo`'s steps, shorter: capture -> archive -> replay twice -> two verdicts and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_end_to_end(tmp_path):
    """The demo with 6 s of traffic: the unchanged candidate passes, the regressed one fails
    (exit 1, with failing checks), and both reports exist with their plots inline."""
    env = {**os.environ, "DEMO_SECONDS": "6", "DEMO_OUT": str(tmp_path / "demo")}
    proc = subprocess.run([sys.executable, str(REPO / "ci" / "demo.py")], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "as expected: yes" in out
    good = tmp_path / "demo" / "report-unchanged"
    bad = tmp_path / "demo" / "report-regression"
    for report in (good, bad):
        html = (report / "report.html").read_text()
        assert html.count("data:image/png;base64,") >= 5, report
        assert (report / "junit.xml").exists()
    s_good = json.loads((good / "summary.json").read_text())
    s_bad = json.loads((bad / "summary.json").read_text())
    assert all(c["ok"] for c in s_good["verdict"]["checks"])
    failed = [c for c in s_bad["verdict"]["checks"] if not c["ok"]]
    assert failed
    assert any("summary" in json.dumps(c) for c in failed)
    assert list((tmp_path / "demo" / "archive").rglob("*.jsonl.zst"))
