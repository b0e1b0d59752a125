"""Learning noisy fields from two baseline runs, and ignoring them per endpoint."""

from __future__ import annotations

import orjson

from replayer.judge.compare import Comparer
from replayer.judge.noise import learn_noise
from replayer.judge.result import Result


def res(idx: int, body, endpoint: str = "GET /a", status: int = 200, error=None,
        iteration: int = 0) -> Result:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Result(idx=idx, worker=0, due=0.0, sent=0.0, lag_ms=0.0, wait_ms=0.0, latency_ms=1.0,
                  status=status, error=error, endpoint=endpoint, status_ok=True, body_ok=True,
                  diffs=[], iteration=iteration, body=raw)


def test_fields_that_differ_between_runs_are_noise_with_indices_folded():
    """$.now differs, $.items[1].id differs (folded to [*]), a list that changes length is
    noise as a whole, equal fields are not; non-JSON bodies that differ make $ noise."""
    a = [res(0, {"now": 1, "ok": True, "items": [{"id": 1}, {"id": 2}]}),
         res(1, {"tags": [1, 2], "ok": True}, "GET /b"),
         res(2, b"<html>1</html>", "GET /c")]
    b = [res(0, {"now": 2, "ok": True, "items": [{"id": 1}, {"id": 3}]}),
         res(1, {"tags": [1], "ok": True}, "GET /b"),
         res(2, b"<html>2</html>", "GET /c")]
    noise = learn_noise(a, b)
    assert noise.paths == {"GET /a": ["$.items[*].id", "$.now"], "GET /b": ["$.tags"],
                           "GET /c": ["$"]}
    assert noise.compared == 3


def test_status_flaps_and_errors_teach_nothing():
    """A request whose status differs between the runs, or that failed, is counted, not learned
    from; a later loop iteration is not paired with the first."""
    a = [res(0, {"x": 1}), res(1, {"x": 1}, error="ConnectionRefused"), res(2, {"x": 1})]
    b = [res(0, {"x": 2}, status=500), res(1, {"x": 2}), res(2, {"x": 2}, iteration=1)]
    noise = learn_noise(a, b)
    assert noise.paths == {}
    assert noise.status_flaps == {"GET /a": 1} and noise.unanswered == 1 and noise.compared == 0


def test_comparer_ignores_noise_only_on_its_endpoint():
    """Learned paths apply to their endpoint; $ skips the body comparison there."""
    c = Comparer(["$.id"], noise={"GET /a": ["$.now"], "GET /c": ["$"]})
    rec, got = orjson.dumps({"now": 1, "id": 1, "v": 1}), orjson.dumps({"now": 2, "id": 2, "v": 1})
    assert c.compare(200, rec, 200, got, endpoint="GET /a").body_ok is True
    assert c.compare(200, rec, 200, got, endpoint="GET /b").diffs == ("$.now",)
    assert c.compare(200, b"x", 200, b"y", endpoint="GET /c").body_ok is None
