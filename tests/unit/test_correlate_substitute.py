"""Substitution: a recorded value is replaced by the candidate's in every place and encoding it
is used in, and nothing else in the request changes."""

from __future__ import annotations

import base64
import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from replayer.correlate import HttpRequest, Use, locate, substitute

OLD, NEW = "6f1c2d3e-4b5a-4c6d-8e7f-901234567890", "0a0b0c0d-1111-4222-8333-444455556666"
TOK, NEWTOK = "a+b/c=d9e8f7g6h5", "Zz9/Yy8+Xx7=="


def req(target="/", headers=(), body=b"", ctype=None) -> HttpRequest:
    headers = list(headers)
    if ctype:
        headers.append(("Content-Type", ctype))
    if body:
        headers.append(("Content-Length", str(len(body))))
    return HttpRequest("POST", target, headers, body)


def sub(r, mapping=None, uses=None):
    return substitute(r, mapping or {OLD: NEW}, uses)


def test_path_segment_plain_and_encoded():
    """A path segment, as is and percent-encoded; the other segments stay."""
    out = sub(req(f"/a/{OLD}/b?x=1"))
    assert out.request.target == f"/a/{NEW}/b?x=1" and out.replaced == 1
    r = req("/t/" + TOK.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") + "/z")
    assert sub(r, {TOK: NEWTOK}).request.target == "/t/Zz9%2FYy8%2BXx7%3D%3D/z"


def test_query_plain_and_url_encoded():
    """A query value, plain and percent-encoded (also '+'-style); other parameters untouched."""
    r = req(f"/q?a={OLD}&b=keep&c=%2F{OLD}")
    assert sub(r).request.target == f"/q?a={NEW}&b=keep&c=%2F{NEW}"
    r = req("/q?k=" + TOK.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") + "&n=1")
    assert sub(r, {TOK: NEWTOK}).request.target == "/q?k=Zz9%2FYy8%2BXx7%3D%3D&n=1"


def test_headers_bearer_and_if_match():
    """Inside Authorization after the scheme, and a whole If-Match value with its quotes."""
    r = req(headers=[("Authorization", f"Bearer {OLD}"), ("If-Match", '"v1-0a9b8c7d"'),
                     ("X-Other", "same")])
    out = sub(r, {OLD: NEW, '"v1-0a9b8c7d"': '"v2-ffffeeee"'})
    assert out.request.headers == [("Authorization", f"Bearer {NEW}"),
                                   ("If-Match", '"v2-ffffeeee"'), ("X-Other", "same")]


def test_cookie_value():
    """One cookie's value; the other cookies and the separators stay."""
    r = req(headers=[("Cookie", f"theme=dark; sid={OLD}; x=1")])
    assert sub(r).request.headers == [("Cookie", f"theme=dark; sid={NEW}; x=1")]


def test_json_in_place():
    """JSON string and number leaves (a number stays a number), nested, the rest of the bytes
    as they were, Content-Length following."""
    body = f'{{"ref": "{OLD}",  "n": {{"order_id": 17, "list": ["{OLD}", 17.5]}}, "qty": 17}}'.encode()
    out = sub(req(body=body, ctype="application/json"), {OLD: NEW, "17": "12345"})
    want = (f'{{"ref": "{NEW}",  "n": {{"order_id": 12345, "list": ["{NEW}", 17.5]}}, '
            '"qty": 17}').encode()
    assert out.request.body == want
    assert dict(out.request.headers)["Content-Length"] == str(len(want))
    assert orjson.loads(out.request.body)["n"]["order_id"] == 12345


def test_json_number_to_string_id():
    """A numeric id replaced by a non-numeric one becomes a JSON string."""
    out = sub(req(body=b'{"order_id": 17}', ctype="application/json"), {"17": "ord_abc"})
    assert json.loads(out.request.body) == {"order_id": "ord_abc"}


def test_form_field():
    """A form field's value, percent-encoded as it was; other fields untouched."""
    body = ("csrf_token=" + TOK.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
            + "&text=a+b").encode()
    out = sub(req(body=body, ctype="application/x-www-form-urlencoded"), {TOK: NEWTOK})
    assert out.request.body == b"csrf_token=Zz9%2FYy8%2BXx7%3D%3D&text=a+b"


def test_text_body():
    """A plain-text body: the value wherever it stands as a token."""
    out = sub(req(body=f"ref={OLD};x".encode(), ctype="text/plain"))
    assert out.request.body == f"ref={NEW};x".encode()


def test_base64_standard_and_urlsafe():
    """Inside a padded standard base64 token (Basic auth) and an unpadded base64url cursor,
    re-encoded in the same alphabet and padding style."""
    basic = base64.b64encode(f"alice:{OLD}!".encode()).decode()
    assert basic.endswith("=")
    cursor = base64.urlsafe_b64encode(orjson.dumps({"after": OLD})).decode().rstrip("=")
    out = sub(req(f"/l?cursor={cursor}", headers=[("Authorization", f"Basic {basic}")]))
    auth = dict(out.request.headers)["Authorization"]
    assert base64.b64decode(auth.split()[1], validate=True) == f"alice:{NEW}!".encode()
    assert auth.endswith("=")
    new_cursor = out.request.target.split("=", 1)[1]
    assert "=" not in new_cursor
    assert orjson.loads(base64.urlsafe_b64decode(new_cursor + "==")) == {"after": NEW}
    assert out.replaced == 2


def test_weak_value_only_as_a_whole_id_place():
    """Without explicit places, a small number is replaced only where it is a whole path
    segment or id-like field, never inside other text or fields."""
    r = req("/orders/17/items?page=17&order_id=17", body=b'{"qty": 17, "order_id": 17}',
            ctype="application/json")
    out = sub(r, {"17": "9"})
    assert out.request.target == "/orders/9/items?page=17&order_id=9"
    assert out.request.body == b'{"qty": 17, "order_id": 9}'


def test_explicit_uses_only():
    """With the binding's places, only those places change."""
    r = req(f"/a/{OLD}?ref={OLD}")
    out = sub(r, uses=[Use("query", "ref")])
    assert out.request.target == f"/a/{OLD}?ref={NEW}"


def test_locate_finds_each_place():
    """locate() names every place (and its encoding) a value is in."""
    basic = base64.b64encode(f"u:{OLD}".encode()).decode()
    r = req(f"/a/{OLD}?q={OLD}", headers=[("X-K", basic), ("Cookie", f"s={OLD}")],
            body=orjson.dumps({"r": OLD}), ctype="application/json")
    found = {(u.place, u.name, u.encoding) for _v, u in locate(r, [OLD])}
    assert found == {("path", "2", "plain"), ("query", "q", "plain"), ("header", "x-k", "base64"),
                     ("cookie", "s", "plain"), ("json", "$.r", "plain")}


def test_nothing_to_do():
    """A mapping whose values the request does not carry leaves it byte for byte."""
    r = req("/x?y=1", headers=[("A", "b")], body=b'{"k": 1}', ctype="application/json")
    out = sub(r)
    assert out.request == r and out.replaced == 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1-_ =", max_size=30), st.text(alphabet="ab1-", min_size=1, max_size=4))
def test_bounded_replacement_agrees_with_the_regex(raw, old):
    """The find-based replacement of a value between non-alphanumeric characters (the replay's
    hot path) gives what the obvious regex gives, on generated text."""
    from replayer.correlate.substitute import _bounded, _replace_bounded

    assert _replace_bounded(raw, old, "NEW") == _bounded(old).subn(lambda _m: "NEW", raw)
