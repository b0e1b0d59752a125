"""Learning correlations: every place a value is made and used is found, across connections of
one client; constants, echoed and client-chosen values never make a rule; memory is bounded."""

from __future__ import annotations

import base64
import gzip
import uuid

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from replayer.correlate import Learner, extract
from replayer.correlate.values import STRONG, strength
from replayer.engine.plan import endpoint_name
from tests.support.exchanges import exchange as ex

TOKEN = "tok_9f8a7b6c5d4e3f2a1b0cZZ"
UID = "6f1c2d3e-4b5a-4c6d-8e7f-901234567890"


def rules(learner) -> set[tuple[str, str, str, str]]:
    return {(r.producer, r.extractor, r.consumer, r.use) for r in learner.rules()}


def feed(records, **kw) -> Learner:
    learner = Learner(endpoint_name, **kw)
    for r in records:
        learner.feed(r)
    return learner


def test_every_place_and_encoding():
    """Values made in JSON (number, string, a link), Location, ETag, Set-Cookie, an HTML hidden
    input, a csrf meta tag and a header come back in a path segment, a query parameter (plain,
    URL-encoded, base64), Authorization, If-Match, a cookie, a JSON and a form body."""
    auth = [("Authorization", f"Bearer {TOKEN}")]
    csrf, sid, reqid = "csrf_A1b2C3d4E5f6G7h8", "sess_0a1b2c3d4e5f6a7b", "rq-77aa88bb99cc"
    html = (f'<html><head><meta name="csrf-token" content="{csrf}M"></head><body><form>'
            f'<input type="hidden" name="csrf_token" value="{csrf}"></form></body></html>').encode()
    cursor = base64.urlsafe_b64encode(orjson.dumps({"after": UID})).decode().rstrip("=")
    slashy = "a+b/c=d9e8f7g6h5"
    recs = [
        ex("POST", "/api/login", json={"user": "alice"},
           resp_json={"token": TOKEN, "key": slashy}),
        ex("POST", "/api/orders", headers=auth, json={"item": "pen"}, status=201,
           resp_headers=[("Location", "/api/orders/17"), ("ETag", '"v1-0a9b8c7d"'),
                         ("X-Request-Token", reqid)],
           resp_json={"id": 17, "ref": UID, "links": {"self": "/api/orders/17/items/5"}}),
        ex("GET", "/web/notes/new", conn="c2", resp_headers=[("Set-Cookie", f"sid={sid}; Path=/"),
                                                             ("Content-Type", "text/html")],
           resp_body=html),
        ex("PUT", "/api/orders/17", headers=auth + [("If-Match", '"v1-0a9b8c7d"')],
           json={"qty": 2, "order_ref": UID}),
        ex("GET", f"/api/orders?ref={UID}&cursor={cursor}&k={slashy.replace('+', '%2B').replace('/', '%2F')}",
           headers=auth + [("X-Trace", reqid)]),
        ex("GET", "/api/orders/17/items/5", headers=auth),
        ex("POST", "/web/notes", conn="c3", headers=[("Cookie", f"theme=dark; sid={sid}"),
                                                     ("X-CSRF-Token", csrf + "M")],
           form=f"csrf_token={csrf}&text=hello"),
    ]
    got = rules(feed(recs))
    want = {
        ("POST /api/login", "json:$.token", "PUT /api/orders/:id", "header:authorization"),
        ("POST /api/orders", "json:$.id", "PUT /api/orders/:id", "path:3"),
        ("POST /api/orders", "header:location seg:3", "PUT /api/orders/:id", "path:3"),
        ("POST /api/orders", "header:etag", "PUT /api/orders/:id", "header:if-match"),
        ("POST /api/orders", "json:$.ref", "PUT /api/orders/:id", "json:$.order_ref"),
        ("POST /api/orders", "json:$.ref", "GET /api/orders", "query:ref"),
        ("POST /api/orders", "json:$.ref", "GET /api/orders", "query:cursor (base64)"),
        ("POST /api/login", "json:$.key", "GET /api/orders", "query:k (url)"),
        ("POST /api/orders", "header:x-request-token", "GET /api/orders", "header:x-trace"),
        ("POST /api/orders", "json:$.links.self seg:5", "GET /api/orders/:id/items/:id", "path:5"),
        ("GET /web/notes/new", "cookie:sid", "POST /web/notes", "cookie:sid"),
        ("GET /web/notes/new", "html:input:csrf_token", "POST /web/notes", "form:csrf_token"),
        ("GET /web/notes/new", "html:meta:csrf-token", "POST /web/notes", "header:x-csrf-token"),
    }
    assert want <= got, want - got


def test_token_carries_the_client_across_connections():
    """A login on one connection, an order made with its token on a second, the order's id
    used on a third: both values are bound, to the records that made them."""
    login = ex("POST", "/api/login", conn="a1", json={"u": "x"}, resp_json={"token": TOKEN})
    make = ex("POST", "/api/orders", conn="a2", headers=[("Authorization", f"Bearer {TOKEN}")],
              status=201, resp_json={"id": 4})
    use = ex("DELETE", "/api/orders/4", conn="a3", headers=[("Authorization", f"Bearer {TOKEN}")])
    learner = Learner(endpoint_name)
    learner.feed(login)
    assert learner.feed(make).bindings[0].producer == (login.conn, login.seq)
    binds = {b.value: b for b in learner.feed(use).bindings}
    assert binds["4"].producer == (make.conn, make.seq)
    assert binds[TOKEN].producer == (login.conn, login.seq)
    assert [e.name for e in binds["4"].extractors] == ["$.id"]
    assert [(u.place, u.name) for u in binds["4"].uses] == [("path", "3")]


def test_binding_extractor_reads_the_candidates_value():
    """A binding's extractor, applied to another answer of the same shape, gives that answer's
    value (what the engine binds on replay); gzip answers are read decoded."""
    rec = ex("POST", "/api/orders", status=201, resp_headers=[("Location", "/api/orders/9")],
             resp_json={"id": 9, "ref": UID})
    produced = {p.value: p for p in Learner(endpoint_name).feed(rec).produced}
    new_uid = str(uuid.uuid4())
    body = gzip.compress(orjson.dumps({"id": 123, "ref": new_uid}))
    headers = [("Location", "/api/orders/123"), ("Content-Encoding", "gzip"),
               ("Content-Type", "application/json")]
    assert {extract(e, headers, body) for e in produced["9"].extractors} == {"123"}
    assert extract(produced[UID].extractors[0], headers, body) == new_uid


def test_gzip_answer_is_learned_from():
    """A gzip-coded JSON answer makes values like a plain one."""
    body = gzip.compress(orjson.dumps({"ref": UID}))
    learner = feed([ex("POST", "/x", resp_headers=[("Content-Encoding", "gzip"),
                                                   ("Content-Type", "application/json")],
                       resp_body=body),
                    ex("GET", f"/x/{UID}")])
    assert ("POST /x", "json:$.ref", "GET /x/:id", "path:2") in rules(learner)


def test_echoed_value_is_not_made():
    """A value the request itself carried (body, query, header) is not made by its answer."""
    learner = feed([
        ex("POST", f"/api/things?ref={UID}", json={"name": "n-12345678"},
           headers=[("X-Key", "hdr_55aa66bb77cc")],
           resp_json={"id": "n-12345678", "ref": UID, "key": "hdr_55aa66bb77cc"}),
        ex("GET", f"/api/things/n-12345678/{UID}/hdr_55aa66bb77cc"),
    ])
    assert learner.rules() == [] and learner.stats.echoed == 3


def test_client_chosen_value_is_not_made():
    """A value the client sent before (another endpoint) is the client's, not the server's."""
    learner = feed([ex("PUT", f"/api/users/{UID}", json={"name": "a"}),
                    ex("GET", "/api/me", resp_json={"user_id": UID}),
                    ex("GET", f"/api/users/{UID}/orders")])
    assert learner.rules() == [] and learner.stats.sent_first == 1


def test_weak_value_only_in_id_places():
    """A small number is made only in an id field and used only as a whole path segment or an
    id-like field: {"qty": 3} neither makes nor uses it."""
    learner = feed([ex("POST", "/api/orders", status=201, resp_json={"id": 3, "qty": 3}),
                    ex("POST", "/api/carts", json={"qty": 3, "note": "3"}),
                    ex("GET", "/api/orders/3?page=3")])
    assert rules(learner) == {("POST /api/orders", "json:$.id", "GET /api/orders/:id", "path:3")}


def test_another_clients_value_is_not_bound():
    """Order 17 made for alice is not what bob's GET /api/orders/17 means."""
    learner = feed([
        ex("POST", "/api/orders", conn="a", headers=[("Authorization", "Bearer alice-0011aabb")],
           status=201, resp_json={"id": 17, "ref": UID}),
        ex("GET", f"/api/orders/17?ref={UID}", conn="b",
           headers=[("Authorization", "Bearer bob-99887766")]),
    ])
    assert learner.rules() == []


def test_value_sent_before_its_answer_ended_is_not_bound():
    """A request that carried the value while the making answer was still on its way shows the
    client knew it: no binding, and the value is no longer taken as made."""
    learner = Learner(endpoint_name)
    learner.feed(ex("POST", "/a", resp_json={"ref": UID}, ts_s=10.0, latency_us=500_000))
    assert learner.feed(ex("GET", f"/b/{UID}", ts_s=10.2)).bindings == ()
    assert learner.feed(ex("GET", f"/b/{UID}", ts_s=11.0)).bindings == ()
    assert learner.stats.premature == 1


def test_constants_make_no_rules():
    """Status words, booleans, small counters, versions and content types that answers repeat
    and requests carry give no rule."""
    recs = []
    for i in range(20):
        conn = f"k{i}"
        recs.append(ex("GET", "/api/status", conn=conn,
                       resp_json={"status": "ok", "count": 1, "enabled": True, "version": "v2",
                                  "type": "application/json", "page": 2, "build": "2024.05.01-r7"}))
        recs.append(ex("POST", "/api/things?page=2&count=1", conn=conn,
                       headers=[("Accept", "application/json"), ("X-Build", "2024.05.01-r7")],
                       json={"status": "ok", "enabled": True, "version": "v2", "page": 2}))
    learner = feed(recs, shared_limit=4)
    assert learner.rules() == [], learner.rules()
    assert learner.stats.shared >= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 99), st.booleans(),
                          st.sampled_from(["ok", "open", "true", "null", "EUR", "en", "v1", "x"])),
                min_size=1, max_size=8),
       st.integers(2, 5))
def test_small_constants_in_value_fields_never_rule(consts, clients):
    """Whatever small constants answers put in non-id fields and requests send back, no rule."""
    recs = []
    for c in range(clients):
        fields = {f"f{i}": v for i, v in enumerate(consts)}
        recs.append(ex("GET", "/api/state", conn=f"h{c}", resp_json=fields))
        recs.append(ex("POST", "/api/state", conn=f"h{c}", json=fields,
                       form=None, headers=[("X-F0", str(consts[0]))]))
        recs.append(ex("GET", "/api/state?" + "&".join(f"f{i}={v}" for i, v in enumerate(consts)),
                       conn=f"h{c}"))
    assert feed(recs).rules() == []


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefABCDEF0123456789-_", min_size=8, max_size=40),
       st.sampled_from(["query", "header", "json", "form", "path"]))
def test_echoed_strong_values_never_rule(value, where):
    """A strong value the request carried, in any place, echoed by its answer, is never made.
    (A weak one counts only as a whole id place: test_small_number_in_a_value_field...)"""
    assume(strength(value) == STRONG)
    target, headers, json, form = "/api/e", [], None, None
    if where == "query":
        target += f"?v={value}"
    elif where == "header":
        headers = [("X-V", value)]
    elif where == "json":
        json = {"v": value}
    elif where == "form":
        form = f"v={value}"
    else:
        target += f"/{value}"
    learner = feed([ex("POST", target, headers=headers, json=json, form=form,
                       resp_json={"id": value, "echo": value}),
                    ex("GET", f"/api/e/{value}", headers=[("X-W", value)])])
    assert learner.rules() == []


def test_memory_is_bounded():
    """Made and seen values are forgotten past max_values (oldest first) and after ttl_s."""
    learner = Learner(endpoint_name, max_values=50, ttl_s=30)
    for i in range(2000):
        learner.feed(ex("POST", f"/api/o?n=req-{i:08d}x", conn=f"m{i}", ts_s=1000 + i * 0.001,
                        resp_json={"id": f"obj-{i:08d}x"}))
    assert len(learner._made) <= 50 and len(learner._seen) <= 50
    assert learner.stats.expired > 3000
    late = Learner(endpoint_name, ttl_s=30)
    late.feed(ex("POST", "/a", conn="t", resp_json={"ref": UID}, ts_s=100))
    assert late.feed(ex("GET", f"/a/{UID}", conn="t", ts_s=131)).bindings == ()


def test_rules_are_bounded():
    """Past max_rules, new rule keys are not kept and the uses are counted as dropped."""
    recs = []
    for i in range(10):
        name = "abcdefghij"[i] * 3
        recs.append(ex("POST", f"/api/{name}", conn=f"r{i}", resp_json={"ref": f"{UID[:-2]}{i:02d}"}))
        recs.append(ex("GET", f"/api/x/{UID[:-2]}{i:02d}", conn=f"r{i}"))
    learner = feed(recs, max_rules=3)
    assert len(learner.rules()) == 3 and learner.stats.rules_dropped == 7


def test_small_number_in_a_value_field_is_no_echo_and_no_client_choice():
    """{"qty": 2} sent earlier by the same client, or {"qty": 3} in the very request, does not
    make the server's order id 2 or 3 the client's: both are made and bound where the ids come
    back (small ids, as a young database hands out)."""
    learner = feed([ex("POST", "/api/orders", conn="q", json={"qty": 2}, status=201,
                       resp_json={"id": 1}),
                    ex("POST", "/api/orders", conn="q", json={"qty": 5}, status=201,
                       resp_json={"id": 2}),
                    ex("POST", "/api/orders", conn="q", json={"qty": 3}, status=201,
                       resp_json={"id": 3}),
                    ex("GET", "/api/orders/2", conn="q"), ex("GET", "/api/orders/3", conn="q")])
    (rule,) = learner.rules()
    assert rule.count == 2 and learner.stats.echoed == 0


def test_small_id_carried_as_an_id_is_an_echo():
    """A weak value the request carried as a whole id place (a path segment, an id-like field)
    and its answer repeats is an echo: nothing is made."""
    learner = feed([ex("PUT", "/api/orders/7", conn="q", json={"customer_id": 12},
                       resp_json={"id": 7, "customer_id": 12}),
                    ex("GET", "/api/orders/7", conn="q"), ex("GET", "/api/customers/12", conn="q")])
    assert learner.rules() == [] and learner.stats.echoed == 2


def test_html_tags_in_any_form():
    """Inputs and meta tags are read whatever the attribute order, quoting and entities; a
    visible input without an id-like name is not an id place."""
    from replayer.correlate.extract import html_values

    page = ("<META content='abc&amp;123XYZ' NAME=csrf-token>"
            '<input value="t0k3n-99aa" type="HIDDEN" name="authenticity_token"/>'
            '<input name="title" value="Hello">')
    assert html_values(page) == [("meta:csrf-token", "abc&123XYZ", True),
                                 ("input:authenticity_token", "t0k3n-99aa", True),
                                 ("input:title", "Hello", False)]


def test_learned_survives_the_wire():
    """What feed() hands out goes through JSON (a shard file, a worker message) unchanged."""
    from replayer.correlate.model import learned_from_wire, learned_to_wire

    learner = Learner(endpoint_name)
    learner.feed(ex("POST", "/api/login", conn="w", resp_json={"token": TOKEN}))
    made = learner.feed(ex("POST", "/api/orders", conn="w",
                           headers=[("Authorization", f"Bearer {TOKEN}")],
                           resp_json={"items": [{"id": 5, "ref": UID}]}))
    used = learner.feed(ex("PUT", "/api/orders/5", conn="w", json={"ref": UID}))
    for learned in (made, used):
        assert learned.produced or learned.bindings
        assert learned_from_wire(orjson.loads(orjson.dumps(learned_to_wire(learned)))) == learned
