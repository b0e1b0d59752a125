"""``rewind-inspect correlations`` on an exported file lists each learned rule with its count."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.exchanges import exchange as ex
from tests.support.replay import write_jsonl
from tests.support.servers import REPO


def _records():
    out = []
    for u in range(3):
        conn = f"user{u}"
        token = f"tok-{u}-a81c9e2f77b4d3"
        out.append(ex("POST", "/api/login", conn=conn, json={"user": conn},
                      resp_json={"token": token}, ts_s=100 + u))
        auth = [("Authorization", f"Bearer {token}")]
        for k in range(4):
            oid = 10 * u + k + 1
            out.append(ex("POST", "/api/orders", conn=conn, headers=auth, json={"qty": 500},
                          status=201, resp_headers=[("Location", f"/api/orders/{oid}")],
                          resp_json={"id": oid, "status": "open"}, ts_s=110 + 10 * u + 2 * k))
            out.append(ex("GET", f"/api/orders/{oid}", conn=conn, headers=auth,
                          ts_s=111 + 10 * u + 2 * k))
    return out


def _inspect(*args):
    return subprocess.run([sys.executable, "-m", "replayer.inspect.cli", "correlations", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_lists_rules_with_counts(tmp_path):
    """The table names producer, place, consumer and use with the count, and a summary line of
    what was left out; --jsonl gives the same rules as objects."""
    path = write_jsonl(tmp_path / "rec.jsonl", _records())
    p = _inspect("--source", str(path))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["COUNT", "MADE", "BY", "AT", "USED", "BY", "AT", "E.G."]
    rows = [line.split()[:-1] for line in lines[1:]]  # the example column left out
    assert rows == [
        ["12", "POST", "/api/login", "json:$.token", "GET", "/api/orders/:id",
         "header:authorization"],
        ["12", "POST", "/api/login", "json:$.token", "POST", "/api/orders", "header:authorization"],
        ["12", "POST", "/api/orders", "header:location", "seg:3", "GET", "/api/orders/:id",
         "path:3"],
        ["12", "POST", "/api/orders", "json:$.id", "GET", "/api/orders/:id", "path:3"],
    ]
    assert "27 records: 15 values made, 36 carried back" in p.stderr
    j = _inspect("--source", str(path), "--jsonl", "--top", "1")
    assert [json.loads(line) for line in j.stdout.splitlines()] == [
        {"producer": "POST /api/login", "extractor": "json:$.token",
         "consumer": "GET /api/orders/:id", "use": "header:authorization", "count": 12,
         "example": "tok-0-a81c9e2f7…"}]
