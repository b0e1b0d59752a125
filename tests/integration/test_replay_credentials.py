"""Records whose Authorization was masked at capture are replayed with --credentials to a real
loopback server that accepts only the real test token; without the file it refuses them."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from sidecar.redact.apply import Redactor
from sidecar.redact.metrics import RedactMetrics
from sidecar.redact.policy import Policy
from tests.support.replay import logging_server, read_log, run_replay, traffic, write_jsonl

REAL = "test-token-123"


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """30 records over 3 connections, redacted by the capture's default policy."""
    work = tmp_path_factory.mktemp("cred")
    records = traffic(conns=3, total=30, rate=200)
    for r in records:
        r.headers = [(k, "Bearer captured-secret" if k == "Authorization" else v) for k, v in r.headers]
    redactor = Redactor(Policy(), b"shared-key-0123456789", RedactMetrics(CollectorRegistry()))
    records = [redactor.apply(r) for r in records]
    token = dict(records[0].headers)["Authorization"].split()[1]
    assert token.startswith("rwd_") and all(
        dict(r.headers)["Authorization"] == f"Bearer {token}" for r in records)
    return write_jsonl(work / "records.jsonl", records), token, work


def test_credentials_make_masked_requests_authenticate(masked, tmp_path):
    """With --credentials mapping the masked token to the test token, the server sees
    'Bearer test-token-123' on every request and answers 200 as recorded; the summary counts
    the substitutions. Without the file every request carries the token and gets 401."""
    path, token, _ = masked
    creds = tmp_path / "creds.yaml"
    creds.write_text(f"tokens:\n  {token}: {REAL}\n")
    log = tmp_path / "target.jsonl"
    with logging_server(log, "--require-header", f"Authorization: Bearer {REAL}") as srv:
        rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--mode", "max",
                                "--credentials", str(creds), "--report", str(tmp_path / "ok"))
        assert rc == 0, err[-3000:]
        rc, _, err = run_replay("--source", str(path), "--target", srv.url, "--mode", "max",
                                "--report", str(tmp_path / "no"))
        assert rc == 0, err[-3000:]
    seen = read_log(log)
    auth = [dict(row["headers"])["Authorization"] for row in seen]
    assert auth == [f"Bearer {REAL}"] * 30 + [f"Bearer {token}"] * 30
    ok = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert ok["totals"]["sent"] == 30 and ok["totals"]["status_mismatch_rate"] == 0
    assert ok["plan"]["credentials"] == {"requests": 30, "substitutions": 30,
                                         "unresolved_requests": 0}
    refused = json.loads((tmp_path / "no" / "summary.json").read_text())
    assert refused["totals"]["status_mismatch_rate"] == 1.0 and "credentials" not in refused["plan"]


def test_bad_credentials_file_is_a_usage_error(tmp_path):
    """A credentials file with an unknown key stops rewind-replay with exit 2 and one line."""
    bad = tmp_path / "creds.yaml"
    bad.write_text("tokenz: {}\n")
    rc, _, err = run_replay("--source", str(tmp_path / "x.jsonl"), "--target", "http://127.0.0.1:9",
                            "--credentials", str(bad))
    assert rc == 2 and err.strip().startswith("rewind-replay: --credentials: ")
    assert "Traceback" not in err
