"""The stateful API captured through the real probe under mixed multi-user traffic: learning on
the captured range finds the ids, the token, the ETag, the CSRF tokens, the session cookie and
the Location values it carries, and no rule from a constant."""

from __future__ import annotations

from ci.stateful_api.traffic import run
from replayer.correlate import learn
from replayer.engine.plan import endpoint_name
from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess, StreamReader
from tests.support.servers import stateful_api

# The default redaction masks Authorization, Cookie and Set-Cookie with keyed HMAC tokens; the
# login answer's token is masked the same way, so the masked values still correlate.
POLICY = "json:\n  - {path: $.token, part: response}\n"
KEY = b"stateful-test-key-0123456789abcdef"
USERS, ROUNDS = 4, 4

EXPECTED = {
    ("POST /api/login", "json:$.token", "POST /api/orders", "header:authorization"),
    ("POST /api/login", "json:$.token", "DELETE /api/orders/:id", "header:authorization"),
    ("POST /api/orders", "json:$.id", "DELETE /api/orders/:id", "path:3"),
    ("POST /api/orders", "header:location seg:3", "GET /api/orders/:id", "path:3"),
    ("POST /api/orders", "header:location seg:3", "PUT /api/orders/:id", "path:3"),
    ("POST /api/orders", "header:etag", "PUT /api/orders/:id", "header:if-match"),
    ("POST /api/orders", "json:$.ref", "GET /api/orders", "query:ref"),
    ("POST /api/orders", "json:$.ref", "GET /api/orders", "query:cursor (base64)"),
    ("GET /web/login", "cookie:sid", "POST /web/login", "cookie:sid"),
    ("GET /web/login", "html:input:csrf_token", "POST /web/login", "form:csrf_token"),
    ("POST /web/login", "cookie:sid", "GET /web/notes/new", "cookie:sid"),
    ("POST /web/login", "cookie:sid", "POST /web/notes", "cookie:sid"),
    ("GET /web/notes/new", "html:input:csrf_token", "POST /web/notes", "form:csrf_token"),
    ("GET /web/notes/new", "html:meta:csrf-token", "POST /web/notes", "form:csrf_token"),
    ("POST /web/notes", "header:location seg:3", "GET /web/notes/:id", "path:3"),
}
# Every place a server-made value is read from; anything else (qty, version, item, user,
# created_at, a path word of a Location) would be a rule from a constant or a client's value.
MADE_AT = {"json:$.token", "json:$.id", "json:$.ref", "header:location seg:3", "header:etag",
           "cookie:sid", "html:input:csrf_token", "html:meta:csrf-token"}


def capture_stateful(redis_srv, folder, name: str) -> list:
    """USERS x ROUNDS of the JSON and web flows against a fresh stateful API, on connections
    replaced every few requests, captured with POLICY's redaction: every record, capture order."""
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "key").write_bytes(KEY)
    stream = new_stream(name)
    with stateful_api() as srv, CaptureProcess(
            srv.port, redis_srv.url, stream, "--redact-policy", str(folder / "policy.yaml"),
            "--redact-key-file", str(folder / "key")) as cap:
        traffic = run(srv.url, users=USERS, rounds=ROUNDS, reconnect=3)
        assert not traffic["unexpected"], traffic
        records = StreamReader(redis_srv.client(), stream).wait(
            lambda r: True, traffic["requests"], timeout=60)
        assert len(records) == traffic["requests"], cap.log_text()
    records.sort(key=lambda r: r.ts_ns)
    return records


def test_learning_on_a_captured_stateful_range(redis_srv, tmp_path):
    """4 users x 4 rounds of the JSON and web flows, on connections replaced every few
    requests, captured with the default redaction: every expected rule is learned, each is
    counted as often as the traffic used it, and no rule reads a constant."""
    records = capture_stateful(redis_srv, tmp_path, "stateful")
    assert len({r.conn for r in records}) > 2 * USERS  # the flows did cross connections
    learner = learn(records, endpoint_name)
    rules = {(r.producer, r.extractor, r.consumer, r.use): r.count for r in learner.rules()}
    missing = EXPECTED - set(rules)
    assert not missing, (missing, learner.rules(), learner.stats)
    assert {r[1] for r in rules} <= MADE_AT, learner.rules()
    assert rules[("POST /api/orders", "header:etag", "PUT /api/orders/:id",
                  "header:if-match")] == USERS * ROUNDS
    assert rules[("POST /web/notes", "header:location seg:3", "GET /web/notes/:id",
                  "path:3")] == USERS * ROUNDS
    # half the rounds delete their order (the sample's ids start at 1001: none equals a qty)
    assert 1 <= rules[("POST /api/orders", "json:$.id", "DELETE /api/orders/:id",
                       "path:3")] <= USERS * (ROUNDS // 2)
    assert learner.stats.premature == 0
