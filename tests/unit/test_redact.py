"""The redaction engine on records: each rule kind, HMAC tokens, lengths kept consistent, bodies
that cannot be parsed, and the metrics that count it all."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.contract.record import Record
from sidecar.contract.tokens import TOKEN_RE
from sidecar.redact.apply import Redactor
from sidecar.redact.metrics import RedactMetrics
from sidecar.redact.policy import parse_policy
from sidecar.redact.setup import RedactingPublisher

KEY = b"k" * 32


def tok(secret: str | bytes, key: bytes = KEY) -> str:
    secret = secret.encode() if isinstance(secret, str) else secret
    return "rwd_" + hmac.new(key, secret, hashlib.sha256).hexdigest()[:16]


def rec(target="/x", headers=(), body=b"", resp_headers=(), resp_body=b"", method="POST", **kw):
    return Record(ts_ns=1, conn="n:1:3:0", seq=0, client="", method=method, target=target,
                  version="1.1", headers=list(headers), body=body, body_len=len(body),
                  status=200, resp_headers=list(resp_headers), resp_body=resp_body,
                  resp_body_len=len(resp_body), **kw)


def redactor(text: str = "", key: bytes = KEY) -> Redactor:
    return Redactor(parse_policy(text), key, RedactMetrics(CollectorRegistry()),
                    log=structlog.get_logger("test"))


def count(r: Redactor, kind: str) -> float:
    return r.m.registry.get_sample_value("rewind_capture_redacted_fields_total", {"rule_kind": kind})


def json_rec(doc, *, truncated=False, ct="application/json", cut=None) -> Record:
    body = orjson.dumps(doc)
    stored = body[:cut] if cut else body
    r = rec(headers=[("Content-Type", ct), ("Content-Length", str(len(body)))], body=stored,
            truncated=truncated)
    r.body_len = len(body)
    return r


def test_default_headers_masked_without_a_policy_keeping_schemes_and_cookie_names():
    """With no policy the five secret headers are masked: Bearer/Basic schemes, cookie names and
    Set-Cookie attributes stay, so the replayed request still parses; other headers are kept."""
    red = redactor()
    r = red.apply(rec(headers=[("Host", "h"), ("Authorization", "Bearer abc.def"),
                               ("proxy-authorization", "Basic dXNlcjpwdw=="),
                               ("Cookie", "sid=s1; theme=dark"), ("X-Api-Key", "k-1")],
                      resp_headers=[("Set-Cookie", "sid=s2; Path=/; HttpOnly")]))
    assert r.headers == [("Host", "h"), ("Authorization", f"Bearer {tok('abc.def')}"),
                         ("proxy-authorization", f"Basic {tok('dXNlcjpwdw==')}"),
                         ("Cookie", f"sid={tok('s1')}; theme={tok('dark')}"),
                         ("X-Api-Key", tok("k-1"))]
    assert r.resp_headers == [("Set-Cookie", f"sid={tok('s2')}; Path=/; HttpOnly")]
    assert count(red, "default_header") == 5


def test_tokens_are_keyed_stable_and_recognisable():
    """The same secret gives the same rwd_<16 hex> token with the same key (another sidecar,
    a restart) and a different one under another key."""
    a = redactor().apply(rec(headers=[("Authorization", "Bearer s")]))
    b = redactor().apply(rec(headers=[("Authorization", "Bearer s")]))
    c = redactor(key=b"x" * 32).apply(rec(headers=[("Authorization", "Bearer s")]))
    assert a.headers == b.headers != c.headers
    assert TOKEN_RE.fullmatch(a.headers[0][1].split()[1])


def test_defaults_can_be_switched_off_explicitly():
    """default_headers: false stores the five headers as captured."""
    r = redactor("default_headers: false").apply(rec(headers=[("Cookie", "a=1")]))
    assert r.headers == [("Cookie", "a=1")]


def test_header_deny_list_masks_and_drops():
    """Listed headers are masked, or removed with action drop; names match in any case."""
    red = redactor("headers: [x-session, {name: X-Debug, action: drop}]")
    r = red.apply(rec(headers=[("X-Session", "s"), ("x-debug", "d"), ("Accept", "*/*")]))
    assert r.headers == [("X-Session", tok("s")), ("Accept", "*/*")]
    assert count(red, "header") == 2


def test_allow_list_masks_every_other_header_but_framing():
    """In allow-list mode every header not listed is masked, except Content-Length and
    Transfer-Encoding (the stored body's framing)."""
    red = redactor("allow_headers: [Host, Content-Type]")
    r = red.apply(rec(headers=[("Host", "h"), ("X-Trace", "t"), ("Content-Type", "text/plain"),
                               ("Content-Length", "2")], body=b"hi"))
    assert r.headers == [("Host", "h"), ("X-Trace", tok("t")), ("Content-Type", "text/plain"),
                         ("Content-Length", "2")]
    assert count(red, "allow_list") == 1


def test_query_parameters_masked_or_dropped_by_name():
    """Query parameters are matched by decoded name; values masked, or the parameter removed;
    everything else in the target stays byte for byte."""
    red = redactor("query: [token, {name: sig, action: drop}]")
    r = red.apply(rec(target="/p/a%20b?page=2&token=t%2B1&sig=zz&x"))
    assert r.target == f"/p/a%20b?page=2&token={tok('t+1')}&x"
    assert count(red, "query") == 2


def test_json_fields_by_path_in_request_and_response_with_lengths_fixed():
    """JSON paths mask or drop fields in both bodies; body_len and Content-Length follow the
    new body; a field the path does not reach is left alone."""
    red = redactor("json: [$.user.email, {path: '$.items[*].card', action: drop}, $..password]")
    doc = {"user": {"email": "e@x.org", "name": "N"}, "items": [{"card": "4111", "q": 1}, {"q": 2}],
           "auth": {"password": "pw"}}
    r = json_rec(doc)
    resp = orjson.dumps({"user": {"email": "e@x.org"}})
    r.resp_headers = [("Content-Type", "application/problem+json")]
    r.resp_body, r.resp_body_len = resp, len(resp)
    red.apply(r)
    assert orjson.loads(r.body) == {"user": {"email": tok("e@x.org"), "name": "N"},
                                    "items": [{"q": 1}, {"q": 2}], "auth": {"password": tok("pw")}}
    assert r.body_len == len(r.body) and dict(r.headers)["Content-Length"] == str(len(r.body))
    assert orjson.loads(r.resp_body) == {"user": {"email": tok("e@x.org")}}
    assert r.resp_body_len == len(r.resp_body)
    assert count(red, "json") == 4


def test_json_rules_skip_bodies_of_other_content_types():
    """A JSON rule does not touch a body that is not declared JSON."""
    r = redactor("json: [$.a]").apply(json_rec({"a": 1}, ct="text/plain"))
    assert orjson.loads(r.body) == {"a": 1}


def test_regex_over_target_headers_and_bodies():
    """A regular expression masks its matches in the target, header values and bodies (one
    secret, one token everywhere); action drop removes them."""
    red = redactor(r"""regex:
  - {name: email, pattern: '[\w.+-]+@[\w-]+\.[\w.]+'}
  - {name: card, pattern: '\b(?:\d[ -]?){15}\d\b', action: drop, in: [body]}""")
    body = b"mail bob@ex.com, card 4111 1111 1111 1111."
    r = red.apply(rec(target="/u?who=bob@ex.com", headers=[("X-From", "bob@ex.com"),
                                                          ("Content-Length", str(len(body)))],
                      body=body))
    t = tok("bob@ex.com")
    assert r.target == f"/u?who={t}" and r.headers[0] == ("X-From", t)
    assert r.body == f"mail {t}, card .".encode()
    assert r.body_len == len(r.body) and r.headers[1] == ("Content-Length", str(len(r.body)))
    assert count(red, "regex") == 4


def test_truncated_json_gets_regex_rules_only_and_is_counted():
    """A cut JSON body cannot be parsed: only regex rules run, body_len and Content-Length move
    by the change so they still describe the real (longer) body, and the body is counted."""
    red = redactor(r"""json: [$.a]
regex: [{pattern: 'secret\d'}]""")
    with capture_logs() as logs:
        r = red.apply(json_rec({"a": "secret1", "b": "x" * 50}, truncated=True, cut=20))
    real = len(orjson.dumps({"a": "secret1", "b": "x" * 50}))
    delta = len(tok("secret1")) - len("secret1")
    assert b"secret1" not in r.body and r.truncated
    assert r.body_len == real + delta and dict(r.headers)["Content-Length"] == str(real + delta)
    assert red.m.registry.get_sample_value("rewind_capture_redaction_unparsed_bodies_total",
                                           {"part": "request", "reason": "truncated"}) == 1
    assert [e["event"] for e in logs] == ["redact.body_unparsed"]


def test_unparsed_body_dropped_when_the_policy_says_so():
    """on_unparsed_body: drop stores no body for invalid JSON; truncated says it is a prefix."""
    r = rec(headers=[("Content-Type", "application/json")], body=b'{"a": "x", oops')
    redactor("json: [$.a]\non_unparsed_body: drop").apply(r)
    assert r.body == b"" and r.truncated and r.body_len == 15


def test_drop_request_by_path_and_method_counted():
    """drop_request rules drop whole records by path pattern and method; others pass."""
    red = redactor("drop_request: [{path: ^/admin}, {method: DELETE, path: ^/users/}]")
    assert red.apply(rec(target="/admin/keys?x=1")) is None
    assert red.apply(rec(target="/users/1", method="DELETE")) is None
    assert red.apply(rec(target="/users/1", method="GET")) is not None
    assert red.m.registry.get_sample_value("rewind_capture_policy_dropped_requests_total") == 2


def test_nothing_to_do_leaves_the_record_untouched():
    """A record without secrets comes back equal, its header lists unchanged."""
    r = rec(target="/a?b=1", headers=[("Host", "h")], body=b'{"a":1}')
    before = Record.from_json(r.to_json())
    assert redactor("json: [$.z]\nquery: [t]").apply(r) == before


class _Broken(Redactor):
    def apply(self, r):
        raise RuntimeError("boom")


def test_publisher_wrapper_fails_closed():
    """A record the redactor fails on is counted and not published; a good one is published."""
    got = []

    class Sink:
        put = got.append

    wrapped = RedactingPublisher(Sink(), parse_policy(""), KEY, registry=CollectorRegistry(), log=_Log())
    wrapped.put(rec(headers=[("Cookie", "a=1")]))
    assert got[0].headers == [("Cookie", f"a={tok('1')}")]
    wrapped.redactor = _Broken(parse_policy(""), KEY)
    wrapped.put(rec())
    assert len(got) == 1 and wrapped.metrics.registry.get_sample_value(
        "rewind_capture_redaction_errors_total") == 1


class _Failing(Redactor):
    def apply(self, r):
        if r.target == "/boom":
            raise RuntimeError("boom")
        return super().apply(r)


def test_publisher_wrapper_batch_redacts_each_and_hands_over_once():
    """put_many() redacts every record, leaves out (and counts) the one the redactor fails on,
    and hands the rest to the publisher's put_many in one call, in order."""
    batches = []

    class Sink:
        put = None
        put_many = batches.append

    wrapped = RedactingPublisher(Sink(), parse_policy(""), KEY, registry=CollectorRegistry(), log=_Log())
    wrapped.redactor = _Failing(parse_policy(""), KEY, wrapped.metrics)
    wrapped.put_many([rec(headers=[("Cookie", "a=1")]), rec(target="/boom"), rec(target="/z")])
    assert [[(r.target, r.headers) for r in b] for b in batches] == [
        [("/x", [("Cookie", f"a={tok('1')}")]), ("/z", [])]]
    assert wrapped.metrics.registry.get_sample_value("rewind_capture_redaction_errors_total") == 1


class _Log:
    def exception(self, *a, **k):
        pass

    info = warning = exception
