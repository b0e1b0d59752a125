"""Redaction policy files: what loads, and malformed policies rejected at start-up with the file,
the line at fault and what is wrong (exit 2 from rewind-capture, one line, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sidecar.redact.policy import DEFAULT_HEADERS, PolicyError, load_policy, parse_policy
from sidecar.redact.setup import RedactConfigError, load_key
from tests.support.servers import REPO

FULL = r"""# every kind of rule
version: 1
default_headers: true
headers: [X-Session, {name: X-Debug, action: drop}]
allow_headers: [Host, Accept]
json:
  - $.user.email
  - {path: "$.items[*].card", action: drop, part: request}
query: [token, {name: sig, action: drop}]
regex:
  - {name: email, pattern: '[\w.+-]+@[\w-]+\.[\w.]+', in: [target, body]}
drop_request: {path: ^/admin, method: "GET,POST"}
on_unparsed_body: drop
"""


def test_full_policy_loads():
    """A policy using every key loads into the rules it describes."""
    p = parse_policy(FULL, "p.yaml")
    assert p.headers == {"x-session": "mask", "x-debug": "drop"}
    assert p.allow_headers == {"host", "accept"}
    assert [(r.text, r.action, sorted(r.parts)) for r in p.json] == [
        ("$.user.email", "mask", ["request", "response"]),
        ("$.items[*].card", "drop", ["request"])]
    assert p.query == {"token": "mask", "sig": "drop"}
    assert p.regex[0].name == "email" and p.regex[0].places == {"target", "body"}
    assert p.drop_request[0].methods == {"GET", "POST"} and p.on_unparsed_body == "drop"
    assert set(p.header_actions()) == set(DEFAULT_HEADERS) | {"x-session", "x-debug"}


def test_empty_file_is_the_default_policy():
    """An empty policy file means the built-in defaults."""
    assert parse_policy("").header_actions().keys() == set(DEFAULT_HEADERS)


@pytest.mark.parametrize("text, line, message", [
    ("headers: [X-A]\nquery: [t]\nreqex: []\n", 3, "unknown key 'reqex'"),
    ("json:\n  - path: $.a\n    acton: drop\n", 3, "unknown key 'acton' in a json rule"),
    ("json:\n  - $.a\n  - user.email\n", 3, "not a JSON path: 'user.email'"),
    ("json:\n  - $.a[x]\n", 2, "at '[x]'"),
    ("regex:\n  - name: card\n    pattern: '(\\d{4}'\n", 3, "bad pattern"),
    ("regex:\n  - pattern: 'a*'\n", 2, "matches the empty string"),
    ("query:\n  - {name: t, action: hide}\n", 2, "action must be one of mask, drop, got 'hide'"),
    ("headers:\n  - 'Bad Header'\n", 2, "not a header name"),
    ("default_headers: maybe\n", 1, "must be true or false"),
    ("drop_request:\n  - {path: '[a-'}\n", 2, "bad path pattern"),
    ("drop_request:\n  - {}\n", 2, "give a path"),
    ("headers: X-A\n", 1, "headers must be a list"),
    ("json: [$.a\nquery: [t]\n", 2, "not valid YAML"),
    ("version: 2\n", 1, "only version 1"),
])
def test_malformed_policy_names_the_line(text, line, message):
    """Each kind of mistake is reported as FILE:LINE: what is wrong."""
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "redact.yaml")
    assert str(err.value).startswith(f"redact.yaml:{line}:"), str(err.value)
    assert message in str(err.value)


def test_key_file_rules(tmp_path):
    """A key file gives its bytes (trailing newline stripped); a short or missing one is an
    error; no file gives a random key."""
    (tmp_path / "k").write_bytes(b"0123456789abcdef0123\n")
    assert load_key(str(tmp_path / "k")) == (b"0123456789abcdef0123", "file")
    (tmp_path / "short").write_bytes(b"abc\n")
    with pytest.raises(RedactConfigError, match="holds 3 bytes"):
        load_key(str(tmp_path / "short"))
    with pytest.raises(RedactConfigError, match="cannot read"):
        load_key(str(tmp_path / "missing"))
    a, b = load_key(None), load_key(None)
    assert a[1] == "random" and a[0] != b[0] and len(a[0]) == 32


def test_capture_rejects_a_malformed_policy_with_exit_2(tmp_path):
    """rewind-capture exits 2 before loading the probe, printing file and line, no traceback;
    --redact-check shows a good policy at work and exits 0."""
    bad = tmp_path / "redact.yaml"
    bad.write_text("json:\n  - path: $.a\n    acton: drop\n")
    p = subprocess.run([sys.executable, "-m", "sidecar.capture.cli", "--port", "80", "--stream", "s",
                        "--redact-policy", str(bad)], capture_output=True, text=True, cwd=REPO,
                       timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (f"rewind-capture: --redact-policy: {bad}:3: unknown key 'acton' "
                                "in a json rule (known: path, action, part)")
    env = {**os.environ, "REWIND_REDACT_POLICY": str(bad)}  # the chart passes it this way
    p = subprocess.run([sys.executable, "-m", "sidecar.capture.cli", "--port", "80", "--stream", "s"],
                       capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
    assert p.returncode == 2 and f"{bad}:3: unknown key 'acton'" in p.stderr
    good = tmp_path / "good.yaml"
    good.write_text(FULL)
    p = subprocess.run([sys.executable, "-m", "sidecar.capture.cli", "--redact-check", str(good)],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 0, p.stderr
    after = p.stdout.split("after")[1]
    assert "Bearer rwd_" in after and "eyJhbGciOi.secret" not in after and "jane@" not in after


def test_load_policy_unreadable(tmp_path):
    """A missing policy file is a one-line error naming it."""
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(str(tmp_path / "nope.yaml"))
