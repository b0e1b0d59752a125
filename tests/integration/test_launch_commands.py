"""The commands rewind-launch's Jobs run, run for real on this machine: the master container's
command and args (rewind-launch-master wrapping rewind-replay --external-workers) and the worker
containers' (rewind-replay-worker --master-host SERVICE), taken from the built manifests, with
only what a cluster would provide swapped for local equivalents (the Service name -> 127.0.0.1,
the mounted folders -> temp folders). The master's output, as its Pod log would hold it, carries
the report bundle the launcher unpacks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from replayer.launch.bundle import find_bundle, unpack
from replayer.launch.manifests import CREDENTIALS, MASTER_PORT, THRESHOLDS, LaunchSpec, build, names
from tests.support.replay import logging_server, read_log, traffic, write_jsonl
from tests.support.servers import REPO, free_port

BIN = Path(sys.executable).parent
RUN = "cmd-1"


def localize(argv: list[str], swaps: dict[str, str]) -> list[str]:
    """The container's argv with cluster-side paths, names and ports swapped for local ones."""
    out = []
    for tok in argv:
        for old, new in swaps.items():
            tok = tok.replace(old, new)
        out.append(tok)
    return out


@pytest.mark.parametrize(("limits", "code"), [({"max_error_rate": 0.0}, 0), ({"min_rps": 1e9}, 1)])
def test_master_and_worker_commands_replay_and_bundle_the_report(tmp_path, limits, code):
    """Master and 2 workers started with the manifests' commands replay every request once;
    the master exits with the verdict (0 pass, 1 a threshold that cannot hold) and its output
    holds a bundle with that exit code that unpacks to summary.json, report.html, junit.xml."""
    records = traffic(conns=20, total=400, rate=400)
    source = write_jsonl(tmp_path / "records.jsonl", records)
    port = free_port()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "thresholds.json").write_text(json.dumps(limits))
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "credentials.yaml").write_text("headers: {Authorization: Bearer real}\n")
    log = tmp_path / "target.jsonl"
    with logging_server(log) as srv:
        spec = LaunchSpec(run_id=RUN, namespace="replay", image="img", workers=2,
                          replay_args=("--source", str(source), "--target", srv.url, "--mode", "max"),
                          thresholds="{}", credentials="{}")
        master_job, *_, workers_job = build(spec)
        swaps = {THRESHOLDS: str(tmp_path / "etc" / "thresholds.json"),
                 CREDENTIALS: str(tmp_path / "creds" / "credentials.yaml"),
                 "/reports": str(tmp_path / "reports"), names(RUN)["service"]: "127.0.0.1",
                 str(MASTER_PORT): str(port)}
        m = master_job["spec"]["template"]["spec"]["containers"][0]
        w = workers_job["spec"]["template"]["spec"]["containers"][0]
        assert workers_job["spec"]["completions"] == 2
        workers = [subprocess.Popen([str(BIN / w["command"][0]), *localize(w["args"], swaps),
                                     "--log-format", "json"], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for _ in range(2)]
        try:
            master = subprocess.run([str(BIN / m["command"][0]), *localize(m["args"], swaps)],
                                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, timeout=120,
                                    env={"PATH": str(BIN), "REWIND_LOG_FORMAT": "json"})
            outs = [p.communicate(timeout=30)[0] for p in workers]
        finally:
            for p in workers:
                p.kill()
        seen = read_log(log)
    assert master.returncode == code, master.stdout[-3000:]
    assert [p.returncode for p in workers] == [0, 0], outs
    assert Counter(dict(r["headers"])["X-Rec"] for r in seen) == Counter(
        {f"{r.conn}/{r.seq}": 1 for r in records})
    assert {dict(r["headers"])["Authorization"] for r in seen} == {"Bearer real"}
    bundle = find_bundle(master.stdout, RUN)
    assert bundle.exit_code == code
    files = unpack(bundle.data, tmp_path / "back")
    assert {"summary.json", "report.html", "junit.xml"} <= set(files)
    summary = json.loads((tmp_path / "back" / "summary.json").read_text())
    assert summary["verdict"]["passed"] is (code == 0)
    assert summary["totals"]["sent"] == len(records)
