"""Replay-time credentials: masked tokens and named headers get real values before sending."""

from __future__ import annotations

import json

import pytest

from replayer.engine.credentials import CredentialsError, load_credentials
from replayer.engine.rewrite import Rules
from sidecar.contract.record import Record

TOKEN = "rwd_0123456789abcdef"


def test_tokens_and_headers_substituted_everywhere_and_counted(tmp_path):
    """A token is replaced in header values, the target and the body; a named header gets its
    value; a masked token left in a header is counted as unresolved."""
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"tokens": {TOKEN: "real-1"}, "headers": {"X-Api-Key": "k2"}}))
    creds = load_credentials(str(f))
    r = Record(ts_ns=1, conn="c", seq=0, client="", method="POST", target=f"/a?t={TOKEN}",
               version="1.1", headers=[("Authorization", f"Bearer {TOKEN}"),
                                       ("x-api-key", "rwd_ffffffffffffffff"),
                                       ("Cookie", "s=rwd_aaaaaaaaaaaaaaaa")],
               body=f'{{"p": "{TOKEN}"}}'.encode(), body_len=30)
    req = Rules(credentials=creds).apply(r)
    assert req.target == "/a?t=real-1" and req.body == b'{"p": "real-1"}'
    assert req.headers == [("Authorization", "Bearer real-1"), ("x-api-key", "k2"),
                           ("Cookie", "s=rwd_aaaaaaaaaaaaaaaa")]
    assert creds.summary() == {"requests": 1, "substitutions": 4, "unresolved_requests": 1}


@pytest.mark.parametrize("text, message", [
    ("tokenz: {}\n", "expected a mapping with 'tokens'"),
    ("tokens: [a, b]\n", "tokens must be a mapping"),
    ("headers: {'Bad Name': x}\n", "not a header name"),
    ("tokens: {a: [1]}\n", "must be a string"),
    ("tokens: {a: b\n", "not valid YAML"),
])
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    """Malformed credentials files are rejected with what is wrong."""
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(CredentialsError, match=message):
        load_credentials(str(f))
