"""Redaction end to end: real probe, real server, real Redis, real archiver. No secret sent in
any place a policy covers reaches the stream, the RDB file or the archive; tokens are stable."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import zstandard

from tests.bpf.conftest import new_stream
from tests.support.archive import ArchiveProcess
from tests.support.capture import CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request
from tests.support.redis_server import RedisServer
from tests.support.servers import free_port

KEY = b"test-hmac-key-0123456789abcdef"
POLICY = r"""
headers: [X-Session]
json:
  - $.user.email
  - {path: "$.items[*].card", action: drop}
  - {path: $.headers, part: response}   # the echo server repeats every request header
  - {path: $.query, part: response}
query: [token]
regex:
  - {name: email, pattern: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}'}
drop_request: {path: ^/admin}
"""
SECRETS = {
    "bearer": "tokA1b2C3secret", "cookie": "sessionsecret9x8y7z", "session": "xsessionsecret55",
    "email": "jane.secret@example.org", "card": "4111111111111111", "query": "querysecret42",
    "text": "bob.hidden@example.net", "admin": "adminsecret77",
}


def tok(secret: str) -> str:
    return "rwd_" + hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()[:16]


def send(port: int, *reqs: bytes) -> None:
    s = connect(port)
    for raw in reqs:
        s.sendall(raw)
        assert read_responses(s, 1)[0].status == 200
    s.close()


def test_no_secret_reaches_redis_rdb_or_archive(echo_server, tmp_path):
    """Secrets in the Authorization header, a cookie, a listed header, a JSON field, a dropped
    JSON field, a query parameter, free text and a dropped /admin request are searched for in
    the raw XRANGE values, the RDB file after SAVE and the decompressed archive (with bodies
    base64-decoded): none is found, while their tokens are, the same on two connections."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "key").write_bytes(KEY + b"\n")
    s = SECRETS
    auth = [("Authorization", f"Bearer {s['bearer']}"), ("Cookie", f"sid={s['cookie']}; theme=dark"),
            ("X-Session", s["session"])]
    doc = orjson.dumps({"user": {"email": s["email"], "name": "Jane Marker"},
                        "items": [{"sku": "A1", "card": s["card"]}]})
    port = echo_server.port
    stream = new_stream("redact")
    with RedisServer(extra_args=("--rdbcompression", "no")) as redis_srv, CaptureProcess(
            port, redis_srv.url, stream, "--redact-policy", str(tmp_path / "policy.yaml"),
            "--redact-key-file", str(tmp_path / "key"), metrics_port=free_port()) as cap:
        reader = StreamReader(redis_srv.client(), stream)
        send(port, request("GET", f"/admin/keys?k={s['admin']}", headers=auth),
             request("GET", f"/r/profile?page=2&token={s['query']}", headers=auth),
             request("POST", "/r/users", doc, auth + [("Content-Type", "application/json")]))
        send(port, request("GET", "/r/again", headers=auth),
             request("POST", "/r/notes", f"call {s['text']} today".encode(),
                     [("Content-Type", "text/plain")]))
        records = reader.settle(lambda r: True, quiet=1.0)
        metric = cap.metric
        kinds = {k: metric("rewind_capture_redacted_fields_total", rule_kind=k)
                 for k in ("default_header", "header", "json", "query", "regex")}
        dropped = metric("rewind_capture_policy_dropped_requests_total")
        client = redis_srv.client()
        raw_stream = b"\n".join(v for _, fields in client.xrange(f"rewind:{{{stream}}}:http")
                                for v in fields.values() if isinstance(v, bytes))
        client.save()
        rdb = (redis_srv.dir / "dump.rdb").read_bytes()
        archiver = ArchiveProcess(redis_srv.url, stream, tmp_path / "archive", "--drain").start()
        assert archiver.wait(60) == 0, archiver.logs[-5:]
    archive = _archive_bytes(tmp_path / "archive")

    assert sorted(r.target.split("?")[0] for r in records) == ["/r/again", "/r/notes", "/r/profile",
                                                               "/r/users"]
    assert dropped == 1 and all(v > 0 for v in kinds.values()), kinds
    for where, data in (("stream", raw_stream), ("rdb", rdb), ("archive", archive)):
        assert b"Jane Marker" in data and b"/r/profile" in data, f"{where}: search sees no plaintext"
        found = [name for name, secret in s.items() if secret.encode() in data]
        assert not found, f"{where} holds secrets: {found}"
        assert b"/admin" not in data, where
        for secret in ("bearer", "cookie", "session", "email", "query", "text"):
            assert tok(s[secret]).encode() in data, (where, secret)
    by_path = {r.target.split("?")[0]: r for r in records}
    assert dict(by_path["/r/again"].headers)["Authorization"] == f"Bearer {tok(s['bearer'])}"
    assert dict(by_path["/r/profile"].headers)["Authorization"] == f"Bearer {tok(s['bearer'])}"
    users = by_path["/r/users"]
    assert orjson.loads(users.body) == {"user": {"email": tok(s["email"]), "name": "Jane Marker"},
                                        "items": [{"sku": "A1"}]}
    assert users.body_len == len(users.body) == int(dict(users.headers)["Content-Length"])
    resp = by_path["/r/users"]
    assert resp.resp_body_len == len(resp.resp_body) == int(dict(resp.resp_headers)["Content-Length"])


def _archive_bytes(root) -> bytes:
    """Every segment decompressed, plus every body base64-decoded."""
    out = []
    for seg in sorted(root.rglob("*.zst")):
        with open(seg, "rb") as f:
            text = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()
        out.append(text)
        for line in text.splitlines():
            if line.strip():
                row = orjson.loads(line)
                out += [base64.b64decode(row.get(k) or "") for k in ("body_b64", "resp_body_b64")]
    assert out, f"no archive segment under {root}"
    return b"\n".join(out)
