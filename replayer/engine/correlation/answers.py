"""What a Correlator does with an answer and a step, as plain functions: the values an answer
made (``made_values``), the recorded answer rewritten to expect the candidate's values
(``expected_answer``), and a cheap copy of a step with another request (``copy_step``)."""

from __future__ import annotations

from replayer.correlate import HttpRequest, extract, substitute
from replayer.correlate.places import request_slots
from replayer.correlate.values import tokens
from sidecar.contract.content_coding import decoded

__all__ = ["copy_step", "expected_answer", "made_values"]


def made_values(produced, headers, body: bytes) -> dict[str, str]:
    """recorded -> candidate for each value ``produced`` lists (value, extractors) that the
    candidate's answer holds at one of its places (the first that has it)."""
    values = {}
    for value, extractors in produced:
        for ex in extractors:
            got = extract(ex, headers, body)
            if got is not None:
                values[value] = got
                break
    return values


def copy_step(s, target: str, headers: list, body: bytes):
    """A copy of step ``s`` with another request (``dataclasses.replace`` costs 15 us)."""
    n = object.__new__(type(s))
    for name in s.__slots__:
        object.__setattr__(n, name, getattr(s, name))
    n.target, n.headers, n.body = target, headers, body
    return n


def expected_answer(rec_body: bytes, mapping: dict[str, str], strong: dict[str, str]) -> bytes:
    """The recorded answer with the recorded values replaced by the candidate's (decoded):
    ``mapping`` (the values of the answers the step depends on and of its own) and, of
    ``strong`` (every strong value bound so far), those the answer holds."""
    body = decoded(rec_body)  # the comparison reads both answers decoded too
    ctype = "application/json" if body.lstrip()[:1] in (b"{", b"[") else "text/plain"
    req = HttpRequest("GET", "/", [("content-type", ctype)], body)
    if strong:
        found = {t for slot in request_slots(req) for t in tokens(slot.text) if t in strong}
        mapping = {**{t: strong[t] for t in found}, **mapping}
    return substitute(req, mapping).request.body if mapping else body
