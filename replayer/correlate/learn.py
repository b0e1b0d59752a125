"""Learning which values the server made and the client carried back: ``Learner.feed(record)``.

Records arrive in capture order. For each one the learner

1. finds the request's uses: a value in one of its places (``places.request_slots``) that an
   earlier answer *to the same client* made, sent after that answer ended;
2. then the answer's productions: values in it (``extract.response_values``) that are
   distinctive (``values.strength``; a weak value only in an id-like place), not in the request
   that got the answer (an echo), not sent earlier by the same client (the client chose it),
   and not made before for that client (the first answer that made a value is its producer).

A client is who holds a credential (an ``Authorization`` value, a strong cookie value, an API
key header) or, for a request without one, its connection. A credential that an answer made
brings that answer's client along (a login on one connection, the token used on others), and an
answer that sets a cookie makes its values belong to that cookie's holder too. A value made for
more than ``shared_limit`` clients is a constant of the API, not state: it is dropped and the
uses it had added to rules are taken back (bindings already handed out for it stay: on replay
the candidate answers the same constant, so substituting it changes nothing).

Bounded memory: values made and values seen in requests are forgotten ``ttl_s`` of capture time
after they were last touched, and beyond ``max_values`` entries each (oldest first); both are
counted (``stats.expired``). Per value at most ``shared_limit`` clients are kept. So the state
is at most about ``2 * max_values * (512 + ~400)`` bytes, whatever the range's length.

Output per record (``Learned``): what its answer made (``produced``: the engine reads the same
places of the candidate's answer) and what its request needs (``bindings``: recorded value,
producing record, the places it is made at and used at).

Ordering (``after``): a client's requests on different connections were ordered by the client
(it sent one after an answer on another connection) without a value between them: a GET after
a PUT of the same order, a DELETE after a GET. Replayed, the connections would race. So each
record that carries a made value names the same client's request on another connection whose
answer it must follow: the latest one of any kind that had ended when it started. Reads follow
reads too: a chain through every request is what orders a DELETE on one connection after a
list read on another (with reads following only writes, the DELETE overtook that read on
replay and the list came back short, a 2-worker race seen in tests/bpf/test_stateful_replay.py). Only
requests that carry or make server-made values take part, so a client's stateless traffic
(static assets, one fixed API key and no ids) is never serialised. Kept per identity key,
bounded like the values (``max_values``).

``rules()`` aggregates all uses: producer endpoint + extractor -> consumer endpoint + place,
with counts.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from replayer.correlate.extract import response_values
from replayer.correlate.model import Binding, Learned, LearnStats, Production, Rule
from replayer.correlate.places import Extractor, RecordRef, Use, request_slots
from replayer.correlate.values import NONE, STRONG, WEAK, strength, tokens

__all__ = ["Binding", "LearnStats", "Learned", "Learner", "Production", "Rule", "learn"]

MAX_KEYS = 16  # identity keys kept per client
MAX_COUNTED = 64  # rule keys remembered per made value (to take back if it is a constant)


@dataclass(slots=True)
class _Made:
    value: str
    ref: RecordRef
    ts_ns: int
    end_ns: int
    endpoint: str
    extractors: tuple[Extractor, ...]
    keys: frozenset[str]
    strong: bool
    counted: list[tuple] = field(default_factory=list)  # rule keys its uses added to (retracted
    # if the value turns out to be a constant)


@dataclass(slots=True)
class _Seen:
    ts_ns: int
    keys: list[frozenset[str]] | None = field(default_factory=list)  # None: many clients


class Learner:
    """Streaming learner; ``endpoint(method, target)`` names endpoints in rules."""

    def __init__(self, endpoint: Callable[[str, str], str], *, ttl_s: float = 600.0,
                 max_values: int = 200_000, max_rules: int = 10_000, shared_limit: int = 8) -> None:
        if ttl_s <= 0 or max_values < 1 or max_rules < 1 or shared_limit < 1:
            raise ValueError("ttl_s, max_values, max_rules and shared_limit must be positive")
        self.endpoint = endpoint
        self.ttl_ns = int(ttl_s * 1e9)
        self.max_values, self.max_rules, self.shared_limit = max_values, max_rules, shared_limit
        self.stats = LearnStats()
        self._made: OrderedDict[str, list[_Made]] = OrderedDict()
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._shared: OrderedDict[str, int] = OrderedDict()
        self._rules: Counter = Counter()
        self._examples: dict[tuple, str] = {}
        self._last: OrderedDict[str, tuple] = OrderedDict()  # identity key -> (end_ns, ref) of its
        self._last_write: OrderedDict[str, tuple] = OrderedDict()  # latest request / write

    # -- per record --------------------------------------------------------------------------
    def feed(self, r) -> Learned:
        """Learn from one record (capture order); what it makes and what it needs."""
        self.stats.records += 1
        self._expire(r.ts_ns)
        ref = RecordRef(r.conn, r.seq)
        slots = request_slots(r, self.stats)
        texts = [(s, tokens(s.text)) for s in slots]
        identity = self._identity(r, slots)
        bindings = self._uses(r, ref, identity, texts)
        # What the request carried, read as the uses are: strong values anywhere, weak ones as a
        # whole id place. Its answer echoing one makes nothing, and later answers cannot make
        # it for this client. (A weak value elsewhere, {"qty": 3}, is no echo of {"id": 3}.)
        carried: set[str] = set()
        for slot, toks in texts:
            carried.update(t for t in toks if strength(t) == STRONG)
            if slot.id_place and strength(slot.text) == WEAK:
                carried.add(slot.text)
        for t in carried:
            self._saw(t, identity, r.ts_ns)
        produced = self._productions(r, ref, identity, carried) if 100 <= r.status < 400 else ()
        after = self._order(r, ref, identity, bool(bindings), bool(bindings or produced))
        self._expire(r.ts_ns)  # the count bound holds after each record
        return Learned(ref, produced, bindings, after)

    def _order(self, r, ref: RecordRef, identity, carries: bool, stateful: bool
               ) -> RecordRef | None:
        if not stateful:  # touches no server-made value: neither waits nor is waited for
            return None
        write = r.method.upper() not in _READS
        best = None
        for k in identity if carries else ():
            for table in (self._last,):  # the latest of any kind: a write after a read
                got = table.get(k)          # elsewhere is ordered only through that read
                if got is not None and got[1].conn != r.conn and got[0] <= r.ts_ns and (
                        best is None or got[0] > best[0]):
                    best = got
        mine = (r.ts_ns + r.latency_us * 1000, ref)
        for k in identity:
            for table in (self._last, self._last_write) if write else (self._last,):
                table[k] = mine
                table.move_to_end(k)
                while len(table) > self.max_values:
                    table.popitem(last=False)
        if best is None:
            return None
        self.stats.ordered += 1
        return best[1]

    def _identity(self, r, slots) -> frozenset[str]:
        keys: set[str] = set()
        creds: list[str] = []
        for s in slots:
            u = s.use
            if u.encoding != "plain" and u.encoding != "url":
                continue
            if u.place == "header" and (u.name in ("authorization", "proxy-authorization")
                                        or _credential_header(u.name)):
                keys.add(f"hdr:{u.name}={s.text}")
                creds += s.text.split()
            elif u.place == "cookie" and strength(s.text) == STRONG:
                keys.add(f"cookie:{u.name}={s.text}")
                creds.append(s.text)
        if not keys:
            keys.add(f"conn:{r.conn}")
        for c in creds:
            for m in self._made.get(c, ()):
                keys |= m.keys
                if len(keys) >= MAX_KEYS:
                    break
        return frozenset(sorted(keys)[:MAX_KEYS]) if len(keys) > MAX_KEYS else frozenset(keys)

    def _uses(self, r, ref: RecordRef, identity, texts) -> tuple[Binding, ...]:
        found: dict[tuple[str, RecordRef], tuple[_Made, list[Use]]] = {}
        for slot, toks in texts:
            for t in toks:
                made = self._made.get(t)
                if not made:
                    continue
                m = next((m for m in made if m.keys & identity), None)
                if m is None or m.ref == ref:
                    continue
                if not m.strong and not (slot.id_place and t == slot.text):
                    continue
                if r.ts_ns < m.end_ns:  # the client had it before the answer was out: not made
                    self.stats.premature += 1
                    made.remove(m)
                    if not made:
                        del self._made[t]
                    continue
                entry = found.setdefault((t, m.ref), (m, []))
                if slot.use not in entry[1]:
                    entry[1].append(slot.use)
        if not found:
            return ()
        consumer = self.endpoint(r.method, r.target)
        out = []
        for (value, _), (m, uses) in found.items():
            out.append(Binding(value, m.ref, m.extractors, tuple(uses)))
            self.stats.uses += len(uses)
            for ex in m.extractors:
                for u in uses:
                    key = (m.endpoint, ex.template(), consumer, u.template())
                    if self._count(key, value) and len(m.counted) < MAX_COUNTED:
                        m.counted.append(key)
        self.stats.bindings += len(out)
        return tuple(out)

    def _count(self, key: tuple, value: str) -> bool:
        if key not in self._rules and len(self._rules) >= self.max_rules:
            self.stats.rules_dropped += 1
            return False
        self._rules[key] += 1
        self._examples.setdefault(key, value if len(value) <= 16 else value[:15] + "…")
        return True

    def _retract(self, made: list[_Made]) -> None:
        """A value found to be a constant: the uses it added to rules are taken back."""
        for m in made:
            for key in m.counted:
                self._rules[key] -= 1
                self.stats.retracted += 1
                if self._rules[key] <= 0:
                    del self._rules[key]
                    self._examples.pop(key, None)

    def _productions(self, r, ref: RecordRef, identity, sent: set[str]) -> tuple[Production, ...]:
        groups: dict[str, list[tuple[Extractor, bool]]] = {}
        owners = set(identity)
        for value, ex, id_place in response_values(r.resp_headers, r.resp_body, self.stats):
            groups.setdefault(value, []).append((ex, id_place))
            if ex.place == "cookie" and strength(value) == STRONG:
                owners.add(f"cookie:{ex.name}={value}")
        keys = frozenset(owners)
        out = []
        endpoint = None
        for value, places in groups.items():
            st = strength(value)
            exts = tuple(ex for ex, idp in places if st == STRONG or idp)
            if st == NONE or not exts:
                self.stats.not_distinctive += 1
                continue
            if value in sent:
                self.stats.echoed += 1
                continue
            if self._sent_before(value, identity) or value in self._shared:
                self.stats.sent_first += 1
                continue
            made = self._made.get(value)
            if made and any(m.keys & identity for m in made):
                self.stats.reproduced += 1
                continue
            if made and len(made) >= self.shared_limit:
                self.stats.shared += 1
                self._retract(made)
                del self._made[value]
                self._shared[value] = r.ts_ns
                continue
            endpoint = endpoint or self.endpoint(r.method, r.target)
            m = _Made(value, ref, r.ts_ns, r.ts_ns + r.latency_us * 1000, endpoint, exts, keys,
                      st == STRONG)
            if made:
                made.append(m)
                self._made.move_to_end(value)
            else:
                self._made[value] = [m]
            out.append(Production(value, exts))
        self.stats.produced += len(out)
        return tuple(out)

    # -- what clients sent -------------------------------------------------------------------
    def _saw(self, value: str, identity, ts_ns: int) -> None:
        seen = self._seen.get(value)
        if seen is None:
            self._seen[value] = _Seen(ts_ns, [identity])
            return
        seen.ts_ns = ts_ns
        self._seen.move_to_end(value)
        if seen.keys is not None and identity not in seen.keys:
            seen.keys.append(identity)
            if len(seen.keys) > self.shared_limit:
                seen.keys = None

    def _sent_before(self, value: str, identity) -> bool:
        seen = self._seen.get(value)
        return seen is not None and (seen.keys is None or any(k & identity for k in seen.keys))

    def _expire(self, now_ns: int) -> None:
        cut = now_ns - self.ttl_ns
        for table, ts in ((self._made, lambda v: v[-1].ts_ns), (self._seen, lambda v: v.ts_ns),
                          (self._shared, lambda v: v)):
            while table and (len(table) > self.max_values or ts(next(iter(table.values()))) < cut):
                table.popitem(last=False)
                self.stats.expired += 1

    # -- results -----------------------------------------------------------------------------
    def rules(self) -> list[Rule]:
        """Every rule seen, most used first."""
        return [Rule(*key, n, self._examples[key]) for key, n in
                sorted(self._rules.items(), key=lambda kv: (-kv[1], kv[0]))]


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _credential_header(name: str) -> bool:
    return any(w in name for w in ("api-key", "apikey", "api_key", "auth-token", "session"))


def learn(records, endpoint: Callable[[str, str], str], **limits) -> Learner:
    """Feed every record of an iterable to a new ``Learner`` and return it (for rules)."""
    learner = Learner(endpoint, **limits)
    for r in records:
        learner.feed(r)
    return learner

