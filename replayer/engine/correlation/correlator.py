"""A worker's correlation for one run: ``Correlator``.

``finalise(step)`` is called just before a step is sent. When the step carries values made by
earlier answers (``Step.corr`` bindings), it takes each from the ``ValueStore`` -- waiting for
that producer's answer when it has not arrived (per dependency, up to ``wait_s``) -- and
rewrites the request at the places the value is used (``replayer.correlate.substitute``). A
value whose producer failed, whose answer did not hold it, or that did not come in time leaves
the recorded value in place and is counted ``unresolved`` (with the step's index, so the report
can tell which mismatches it explains). With ``shift_ns`` (``--shift-time``), capture-time
timestamps move by the replay's offset; JWTs are re-signed with a key or counted as left.

``answered(pending, status, headers, body)`` runs when the answer is in: the values its record
made are read from the same places of the candidate's answer and put in the store (and handed
to ``relay`` for the workers in ``relay_to``); then the recorded answer the step is compared
with is rewritten with every recorded -> candidate value the step carried or made, so the
comparison expects the candidate's ids and tokens (``explained``: answers that needed it).

Per endpoint it counts values carried, requests that waited (and how long), unresolved
dependencies and expected answers rewritten; ``summary()`` is what the worker sends the master.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable

from replayer.correlate import HttpRequest, substitute
from replayer.correlate.values import STRONG, strength
from replayer.engine.correlation.answers import copy_step, expected_answer, made_values
from replayer.correlate.jwts import JwtCounts, shift_jwts
from replayer.correlate.timeshift import shift_times
from replayer.engine.correlation.stepwire import (AFTER, BINDINGS, PRODUCED, RELAY_TO,
                                                  bindings_of, produced_of, ref_of)
from replayer.engine.correlation.store import FAILED, GEVENT_WAITING, TIMED_OUT, ValueStore, Waiting

__all__ = ["Correlator", "Pending"]

MAX_RELAY_MS = 10_000  # relay latencies kept for the report
EXAMPLES = 20  # unexplained mismatches kept for the report
MAX_UNRESOLVED_IDX = 10_000  # step indices of unresolved requests kept for the report


class Pending:
    """A step finalised for sending, with the recorded -> candidate values its request got."""

    __slots__ = ("step", "mapping")

    def __init__(self, step, mapping: dict[str, str]) -> None:
        self.step, self.mapping = step, mapping


def _counts() -> dict:
    return {"carried": 0, "waited": 0, "followed": 0, "wait_ms_total": 0.0, "wait_ms_max": 0.0,
            "unresolved": 0, "made": 0, "not_made": 0, "explained": 0}


class Correlator:
    def __init__(self, *, waiting: Waiting = GEVENT_WAITING, wait_s: float = 60.0,
                 relay: Callable[[tuple, dict | None, list[int]], None] | None = None,
                 shift_ns: int | None = None, capture_ns: int = 0, jwt_key=None,
                 jwt: bool = False, max_refs: int = 200_000) -> None:
        self.store = ValueStore(waiting, max_refs)
        self.waiting, self.wait_s, self.relay = waiting, wait_s, relay
        self.shift_ns, self.capture_ns = shift_ns, capture_ns
        self.jwt_key, self.jwt = jwt_key, jwt or jwt_key is not None
        self.rewrites_all = shift_ns is not None or self.jwt  # every step is looked at
        self.endpoints: dict[str, dict] = defaultdict(_counts)
        self.unresolved = {"producer_failed": 0, "not_in_answer": 0, "timed_out": 0,
                           "order_timed_out": 0}  # the last: not a value, not "unresolved"
        self.unresolved_idx: list[int] = []
        self._unresolved_set: set[int] = set()
        self.mismatches: dict[str, dict] = {}  # endpoint -> status/body mismatches, unexplained
        self.examples: list[dict] = []  # the first unexplained mismatches
        self.relay_all = False  # streaming: every stateful answer is relayed (announced)
        self.times_shifted = 0
        self.jwts = JwtCounts()
        self.relay_ms: list[float] = []  # per relayed producer: sent by its worker -> here
        self.relayed_out = 0
        self.strong: OrderedDict[str, str] = OrderedDict()  # strong recorded -> candidate values

    def set_offset(self, shift_ns: int | None) -> None:
        """The replay's offset from the capture (known at the start), for --shift-time."""
        self.shift_ns = shift_ns
        self.rewrites_all = shift_ns is not None or self.jwt

    # -- before sending ----------------------------------------------------------------------
    def ready(self, s, within_s: float) -> bool:
        """Whether every answer ``s`` depends on is in, waiting up to ``within_s`` for them."""
        corr = s.corr
        if corr is None:
            return True
        deps = [producer for _v, producer, _u in bindings_of(corr)]
        if corr[AFTER] is not None:
            deps.append((corr[AFTER][0], corr[AFTER][1]))
        deadline = self.waiting.now() + within_s
        return all(self.store.get(d, deadline) is not TIMED_OUT for d in deps)

    def finalise(self, s, waited_s: float = 0.0) -> Pending | None:
        """``s`` as it goes out (a copy when anything changes or it makes values), or None when
        correlation has nothing to do with it; ``waited_s``: already waited for its answers
        (``ready``), counted with the rest."""
        corr = s.corr
        if corr is None and not self.rewrites_all:
            return None
        req = HttpRequest(s.method, s.target, s.headers, s.body)
        mapping: dict[str, str] = {}  # every value of the answers it depends on
        if corr is not None and (corr[BINDINGS] or corr[AFTER]):
            req = self._bind(s, req, mapping, waited_s)
        if self.shift_ns is not None:
            sub = shift_times(req, self.shift_ns, self.capture_ns)
            self.times_shifted += sub.replaced
            req = sub.request
        if self.jwt:
            req = shift_jwts(req, (self.shift_ns or 0) // 10**9, self.jwt_key, self.jwts).request
        changed = (req.target, req.headers, req.body) != (s.target, s.headers, s.body)
        if not changed and corr is None:
            return None  # (a copy otherwise: its answer is announced, its expected one rewritten)
        return Pending(copy_step(s, req.target, list(req.headers), req.body), mapping)

    def _bind(self, s, req: HttpRequest, mapping: dict, waited_s: float = 0.0) -> HttpRequest:
        counts = self.endpoints[s.endpoint]
        deadline = None
        t0 = self.waiting.now() - waited_s
        waited = waited_s > 0
        unresolved = False
        after = s.corr[AFTER]
        if after is not None:  # the same client's earlier answer on another connection
            after = (after[0], after[1])
            if not self.store.known(after) or waited:
                waited = True
                deadline = t0 + self.wait_s
                counts["followed"] += 1
                if self.store.get(after, deadline) is TIMED_OUT:
                    self.unresolved["order_timed_out"] += 1
        news: dict[str, str] = {}
        places: list = []
        for value, producer, uses in bindings_of(s.corr):
            if not self.store.known(producer):
                waited = True
                deadline = deadline if deadline is not None else t0 + self.wait_s
            got = self.store.get(producer, deadline if deadline is not None else t0)
            new = got.get(value) if isinstance(got, dict) else None
            if isinstance(got, dict):
                mapping.update(got)
            if new is None:
                unresolved = True
                counts["unresolved"] += 1
                self.unresolved["timed_out" if got is TIMED_OUT else "producer_failed"
                                if got is FAILED else "not_in_answer"] += 1
                continue
            if new != value:
                if strength(value) == STRONG:  # unique: rewritten together, in one pass
                    news[value] = new
                    places += uses
                else:  # a small id: only at its own places
                    req = substitute(req, {value: new}, uses).request
            counts["carried"] += 1
        if news:
            req = substitute(req, news, places).request
        if waited:
            ms = (self.waiting.now() - t0) * 1000
            counts["waited"] += 1
            counts["wait_ms_total"] += ms
            counts["wait_ms_max"] = max(counts["wait_ms_max"], ms)
        if unresolved and len(self.unresolved_idx) < MAX_UNRESOLVED_IDX:
            self.unresolved_idx.append(s.idx)
            self._unresolved_set.add(s.idx)
        return req

    # -- after the answer ----------------------------------------------------------------------
    def answered(self, p: Pending, status: int, headers, body: bytes) -> None:
        """Bind the values the candidate's answer made; rewrite the answer ``p.step`` expects."""
        s = p.step
        corr = s.corr
        mapping = p.mapping
        if corr is not None:  # every stateful answer is announced: a step dealt later may
            # follow it (``after``), and this one may have been shipped before that was known
            values = self._made(s, status, headers, body) if corr[PRODUCED] else (
                {} if status else FAILED)
            ref = ref_of(corr)
            self._put(ref, values)
            if (corr[RELAY_TO] or self.relay_all) and self.relay is not None:
                self.relay(ref, values, corr[RELAY_TO])
                self.relayed_out += 1
            if values:
                mapping = {**mapping, **values}
        if status == s.rec_status and s.rec_body_ok and body != s.rec_body and (
                mapping or self.strong):
            expected = expected_answer(s.rec_body, mapping, self.strong)
            if expected != s.rec_body:
                s.rec_body = expected
                self.endpoints[s.endpoint]["explained"] += 1

    def _made(self, s, status: int, headers, body: bytes) -> dict | None:
        if status == 0:  # no answer
            return FAILED
        values = made_values(produced_of(s.corr), headers, body)
        counts = self.endpoints[s.endpoint]
        counts["made"] += len(values)
        counts["not_made"] += len(s.corr[PRODUCED]) - len(values)
        return values

    def receive(self, ref: tuple, values: dict | None, sent_at: float | None = None,
                now: float | None = None) -> None:
        """Values relayed from another worker (through the master)."""
        self._put(tuple(ref), values)
        if sent_at is not None and now is not None and len(self.relay_ms) < MAX_RELAY_MS:
            self.relay_ms.append((now - sent_at) * 1000)

    def _put(self, ref: tuple, values: dict | None) -> None:
        self.store.put(ref, values)
        for v, new in (values or {}).items():
            if strength(v) == STRONG:  # strong values are unique: every answer may show them
                self.strong[v] = new
                self.strong.move_to_end(v)
        while len(self.strong) > self.store.max_refs:
            self.strong.popitem(last=False)

    def judged(self, r) -> None:
        """A judged result (the worker's sink): its mismatch counted per endpoint, and as
        unexplained unless its request had an unresolved dependency (bounded: counters and the
        first ``EXAMPLES`` examples, nothing per request)."""
        if r.error is not None or (r.status_ok and r.body_ok is not False):
            return
        m = self.mismatches.setdefault(r.endpoint, {"status_mismatches": 0, "body_mismatches": 0,
                                                    "status": {}, "body": 0})
        m["status_mismatches" if not r.status_ok else "body_mismatches"] += 1
        if r.idx in self._unresolved_set:
            return
        if not r.status_ok:
            m["status"][str(r.status)] = m["status"].get(str(r.status), 0) + 1
        else:
            m["body"] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append({"idx": r.idx, "endpoint": r.endpoint, "status": r.status,
                                  "diffs": list(r.diffs)})

    # -- what the worker reports -------------------------------------------------------------
    def summary(self) -> dict:
        relay = sorted(self.relay_ms)
        return {"endpoints": {e: {**c, "wait_ms_total": round(c["wait_ms_total"], 3),
                                  "wait_ms_max": round(c["wait_ms_max"], 3)}
                              for e, c in self.endpoints.items()},
                "unresolved": dict(self.unresolved), "unresolved_idx": self.unresolved_idx,
                "times_shifted": self.times_shifted,
                "jwt": {"resigned": self.jwts.resigned, "unsigned": self.jwts.unsigned,
                        "key_mismatch": self.jwts.key_mismatch,
                        "unreadable": self.jwts.unreadable},
                "relayed_out": self.relayed_out, "relayed_in": len(relay),
                "relay_ms": relay[-1000:] if len(relay) <= 1000 else relay[::len(relay) // 1000],
                "evicted": self.store.evicted, "mismatches": self.mismatches,
                "examples": self.examples}
