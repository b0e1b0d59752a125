"""Correlation applied on replay (replayer/engine/correlation): the master's learning puts each
step's dependencies on it and relays values across workers; a worker's Correlator waits per
dependency on a simulated clock, carries the candidate's values, counts what it cannot, and
rewrites the answer a step is compared with."""

from __future__ import annotations

import heapq
import itertools

import orjson
from gevent.event import Event

from replayer.engine.correlation import Correlator, PlanLearning, answer_headers
from replayer.engine.correlation.stepwire import AFTER, AWAITED, RELAY_TO
from replayer.engine.dealer import build_plan
from replayer.engine.plan import Schedule, endpoint_name
from replayer.engine.rewrite import Rules
from replayer.judge.compare import Comparer
from tests.support.exchanges import exchange as ex

TOKEN = "tok_9f8a7b6c5d4e3f2a1b0cZZ"
NEW_TOKEN = "tok_NEWNEWNEW1234567890abcd"
UID = "6f1c2d3e-4b5a-4c6d-8e7f-901234567890"
AUTH = [("Authorization", f"Bearer {TOKEN}")]


class SimWaiting:
    """A simulated clock: ``wait`` runs the scheduled actions in time order until the event is
    set or the timeout passes."""

    def __init__(self) -> None:
        self.t = 0.0
        self.queue: list = []
        self.n = itertools.count()

    def at(self, t: float, fn) -> None:
        heapq.heappush(self.queue, (t, next(self.n), fn))

    def now(self) -> float:
        return self.t

    def wait(self, event: Event, timeout: float) -> bool:
        deadline = self.t + timeout
        while not event.is_set():
            if not self.queue or self.queue[0][0] > deadline:
                self.t = deadline
                return False
            self.t, _, fn = heapq.heappop(self.queue)
            fn()
        return True


def flow():
    """A login on one connection, an order made on another, then read and deleted on a third."""
    return [
        ex("POST", "/api/login", conn="a", json={"user": "u"}, resp_json={"token": TOKEN}),
        ex("POST", "/api/orders", conn="b", headers=AUTH, json={"qty": 2}, status=201,
           resp_headers=[("Location", "/api/orders/1001"), ("ETag", '"e1aa22bb"')],
           resp_json={"id": 1001, "ref": UID, "qty": 2}),
        ex("GET", "/api/orders/1001", conn="c", headers=AUTH,
           resp_json={"id": 1001, "ref": UID, "qty": 2}),
        ex("DELETE", "/api/orders/1001", conn="c", headers=AUTH + [("If-Match", '"e1aa22bb"')],
           status=204),
    ]


def plan_of(records, workers=1):
    learning = PlanLearning(endpoint_name)
    plan = build_plan(records, Rules(), Schedule("max"), workers, learn=learning)
    steps = {s.idx: s for shard in plan.shards for s in shard}
    return plan, [steps[i] for i in range(len(steps))], learning


def answer(status: int, doc=None, headers=()):
    raw = [f"HTTP/1.1 {status} X\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"]
    return status, answer_headers(raw), orjson.dumps(doc) if doc is not None else b""


def test_plan_ships_dependencies_and_relays_across_workers():
    """Learning in build_plan puts on each step what it makes and needs; a producer whose value
    is used by a step dealt to another worker is marked to relay to that worker, and a request
    after the same client's answer on another connection names that answer."""
    rec = flow()
    plan, steps, learning = plan_of(rec, workers=3)
    login, create, read, delete = steps
    assert login.corr[1] and create.corr[1] and read.corr[2] and delete.corr[2]
    worker = {s.conn: w for w, shard in enumerate(plan.shards) for s in shard}
    assert len(set(worker.values())) == 3
    assert login.corr[RELAY_TO] == sorted({worker["b"], worker["c"]})
    assert create.corr[RELAY_TO] == [worker["c"]]
    assert read.corr[AFTER] == ["b", rec[1].seq] and create.corr[AWAITED]  # after the create
    assert learning.stats()["relayed_producers"] == 3


def test_waits_per_dependency_and_carries_the_candidate_values():
    """A read whose order is made on another connection waits exactly until that answer is in
    (simulated clock), then goes out with the new token, id and ETag; the recorded answer it is
    compared with expects the candidate's id and ref, so an unchanged API matches."""
    _plan, (login, create, read, delete), _ = plan_of(flow())
    clock = SimWaiting()
    corr = Correlator(waiting=clock, wait_s=5)
    p = corr.finalise(login)
    corr.answered(p, *answer(200, {"token": NEW_TOKEN}))
    pc = corr.finalise(create)
    assert ("Authorization", f"Bearer {NEW_TOKEN}") in pc.step.headers
    new_uid = "0b0b0b0b-1111-4222-8333-444444444444"
    clock.at(0.25, lambda: corr.answered(pc, *answer(
        201, {"id": 7, "ref": new_uid, "qty": 2},
        [("Location", "/api/orders/7"), ("ETag", '"ff00ff00"')])))
    pr = corr.finalise(read)
    assert clock.now() == 0.25 and pr.step.target == "/api/orders/7"
    status, headers, body = answer(200, {"id": 7, "ref": new_uid, "qty": 2})
    corr.answered(pr, status, headers, body)
    assert Comparer().compare(200, pr.step.rec_body, status, body).body_ok
    assert read.rec_body == orjson.dumps({"id": 1001, "ref": UID, "qty": 2})  # plan untouched
    pd = corr.finalise(delete)
    assert pd.step.target == "/api/orders/7" and ("If-Match", '"ff00ff00"') in pd.step.headers
    s = corr.summary()
    assert s["endpoints"]["GET /api/orders/:id"]["waited"] == 1
    assert s["endpoints"]["GET /api/orders/:id"]["wait_ms_max"] == 250.0
    assert s["unresolved_idx"] == [] and sum(s["unresolved"].values()) == 0


def test_failed_or_late_producer_leaves_the_recorded_value_and_counts_it():
    """A producer that failed (no answer) or never answered in time: the step goes out as
    recorded after the deadline, counted unresolved with its reason and its index."""
    _plan, (login, create, read, _delete), _ = plan_of(flow())
    clock = SimWaiting()
    corr = Correlator(waiting=clock, wait_s=2)
    corr.answered(corr.finalise(login), 0, [], b"")  # no answer
    pc = corr.finalise(create)
    assert ("Authorization", f"Bearer {TOKEN}") in pc.step.headers
    assert corr.unresolved["producer_failed"] == 1
    pr = corr.finalise(read)  # the create never answers: waits to the deadline
    assert clock.now() == 2.0 and pr.mapping == {}  # nothing carried: sent as it is
    assert (pr.step.target, pr.step.headers, pr.step.body) == (read.target, read.headers,
                                                               read.body)
    assert corr.unresolved["timed_out"] == 1 and corr.unresolved["order_timed_out"] == 1
    assert corr.summary()["unresolved_idx"] == [create.idx, read.idx]


def test_values_relayed_from_another_worker_wake_the_waiting_step():
    """Values that arrive from the master (another worker's answer) are bound like local ones."""
    _plan, (login, create, read, _delete), _ = plan_of(flow(), workers=3)
    clock = SimWaiting()
    corr = Correlator(waiting=clock, wait_s=5)
    corr.receive(login.corr[0], {TOKEN: NEW_TOKEN}, sent_at=10.0, now=10.004)
    clock.at(1.0, lambda: corr.receive(create.corr[0], {"1001": "7", UID: UID}))
    pr = corr.finalise(read)
    assert clock.now() == 1.0 and pr.step.target == "/api/orders/7"
    assert ("Authorization", f"Bearer {NEW_TOKEN}") in pr.step.headers
    assert [round(ms, 6) for ms in corr.summary()["relay_ms"]] == [4.0]


def test_steps_without_correlation_cost_a_none_check():
    """A step that makes and needs nothing is sent as it is (no copy, nothing counted)."""
    records = [ex("GET", "/static/a.css", conn="z"), ex("GET", "/static/b.css", conn="z")]
    _plan, steps, _ = plan_of(records)
    corr = Correlator(waiting=SimWaiting())
    assert [s.corr for s in steps] == [None, None]
    assert corr.finalise(steps[0]) is None and corr.summary()["endpoints"] == {}


def test_answer_headers_keep_names_and_values_as_sent():
    """The answer's headers are read from its head's bytes (after an interim 100), as sent."""
    raw = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nETag: \"AbC\"\r\n",
           b"Set-Cookie: sid=XyZ; Path=/\r\nContent-Length: 2\r\n\r\n{}"]
    assert answer_headers(raw) == [("ETag", '"AbC"'), ("Set-Cookie", "sid=XyZ; Path=/"),
                                   ("Content-Length", "2")]


def test_ordering_only_between_stateful_requests_of_one_client():
    """A request follows the same client's latest earlier request on another connection, reads
    after reads too (so a write is ordered after a read on a third connection through it), and
    requests carrying no made value (one fixed API key on many connections) are never ordered."""
    rec = flow()
    _plan, (login, create, read, delete), _ = plan_of(rec)
    assert create.corr[AFTER] == [login.conn, rec[0].seq]  # a write after the login
    assert read.corr[AFTER] == [create.conn, rec[1].seq]
    assert delete.corr[AFTER] is None  # its latest is the read on its own connection: in order
    reread = ex("GET", "/api/orders/1001", conn="d", headers=AUTH)
    _p, steps, _ = plan_of([*rec[:3], reread])
    assert steps[-1].corr[AFTER] == [read.conn, rec[2].seq]  # the latest, a read
    _p, steps, _ = plan_of([*rec, reread])
    assert steps[-1].corr[AFTER] == [delete.conn, rec[3].seq]  # the delete, a later write
    key = [("X-Api-Key", "k-static-0123456789abcdef")]
    _p, steps, _ = plan_of([ex(m, "/api/ping", conn=f"s{i}", headers=key)
                            for i, m in enumerate(["POST", "GET", "PUT", "DELETE"])])
    assert [s.corr for s in steps] == [None] * 4


def test_a_stateful_answer_shipped_before_its_follower_was_dealt_is_still_announced():
    """A step shipped before the master dealt the request that follows it carries no
    ``awaited`` and no ``relay_to``; its answer is still put in the store and sent to the
    master (streaming, more than one worker), so the follower does not wait to the deadline."""
    _plan, (login, create, read, delete), _ = plan_of(flow())
    read.corr[AWAITED], read.corr[RELAY_TO] = False, []  # as shipped, before the delete was dealt
    sent = []
    corr = Correlator(waiting=SimWaiting(), wait_s=5,
                      relay=lambda ref, values, to: sent.append((ref, values)))
    corr.relay_all = True
    corr.receive(login.corr[0], {TOKEN: NEW_TOKEN})
    corr.receive(create.corr[0], {"1001": "7", UID: UID})
    pr = corr.finalise(read)
    corr.answered(pr, 200, [], orjson.dumps({"id": 7, "ref": UID, "qty": 2}))
    assert corr.store.known((read.conn, read.corr[0][1]))
    assert sent == [((read.conn, read.corr[0][1]), {})]
