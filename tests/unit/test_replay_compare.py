"""Response comparison: status, JSON bodies with ignored paths, non-JSON bytes."""

from __future__ import annotations

import pytest

from replayer.judge.compare import Comparer, body_diffs
from sidecar.contract.jsonpath import parse_path


def test_equal_and_status():
    c = Comparer()
    assert c.compare(200, b"x", 200, b"x").body_ok is True
    out = c.compare(200, b"x", 500, b"y")
    assert (out.status_ok, out.body_ok) == (False, None)
    assert c.compare(200, b"x", 200, b"y", rec_body_ok=False).body_ok is None


def test_json_diffs_and_ignore():
    """Differing JSON paths are listed; ignored ones (exact, wildcard, any depth) are not."""
    a = b'{"id": 1, "items": [{"id": 5, "v": 1}], "meta": {"at": "t1"}, "gone": 1}'
    b = b'{"id": 2, "items": [{"id": 6, "v": 1}], "meta": {"at": "t2"}, "new": 1}'
    assert set(Comparer().compare(200, a, 200, b).diffs) == {
        "$.id", "$.items[0].id", "$.meta.at", "$.gone", "$.new"}
    out = Comparer(["$..id", "$.meta.at", "$.gone", "$.new"]).compare(200, a, 200, b)
    assert out.body_ok is True and out.diffs == ()
    out = Comparer(["$.items[*].id"]).compare(200, a, 200, b)
    assert "$.items[0].id" not in out.diffs and "$.id" in out.diffs


def test_not_json():
    out = Comparer().compare(200, b"<html>a", 200, b"<html>b")
    assert out.body_ok is False


@pytest.mark.parametrize("bad", ["created_at", "$.", "$[x]", "$.a b"])
def test_bad_paths(bad):
    with pytest.raises(ValueError):
        parse_path(bad)


@pytest.mark.parametrize(("a", "b", "diffs"), [
    (b"ok", b"fail", ["$ (not JSON, bytes differ)"]),
    (b"<html>", b'{"a": 1}', ["$ (not JSON, bytes differ)"]),
    (b"", b"1", ["$ (not JSON, bytes differ)"]),
    (b' \n{"a": 1}', b'{"a": 2}', ["$.a"]),
    (b"-1", b"true", ["$"]),
    (b'"x"', b"nul", ["$ (not JSON, bytes differ)"]),
])
def test_text_and_json_bodies(a, b, diffs):
    """Bodies that cannot start a JSON text are compared as bytes, without parsing them."""
    assert body_diffs(a, b) == diffs
