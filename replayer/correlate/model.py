"""What learning hands out: per record ``Learned`` (``Production``s and ``Binding``s), the
aggregated ``Rule``s, and ``LearnStats`` (every value left out and every limit reached).

These are what the replay engine consumes: a step whose record made values reads the same
``Extractor`` places of the candidate's answer; a step with bindings waits for its producers'
answers (``RecordRef``: connection and number, unique in a capture) and rewrites its request
at the bindings' ``Use`` places (``replayer.correlate.substitute``).
"""

from __future__ import annotations

from dataclasses import dataclass

from replayer.correlate.places import Extractor, RecordRef, Use

__all__ = ["Binding", "LearnStats", "Learned", "Production", "Rule", "learned_from_wire",
           "learned_to_wire"]


@dataclass(frozen=True, slots=True)
class Production:
    """A value a record's answer made, and the places of that answer it is at."""

    value: str
    extractors: tuple[Extractor, ...]


@dataclass(frozen=True, slots=True)
class Binding:
    """A recorded value a request carries, made by ``producer``'s answer (at ``extractors``),
    used in this request at ``uses``."""

    value: str
    producer: RecordRef
    extractors: tuple[Extractor, ...]
    uses: tuple[Use, ...]


@dataclass(frozen=True, slots=True)
class Learned:
    ref: RecordRef
    produced: tuple[Production, ...] = ()
    bindings: tuple[Binding, ...] = ()
    after: RecordRef | None = None  # the same client's earlier request (another connection)
    # whose answer this one came after, and must on replay too (see learn.Learner: ordering)


@dataclass(frozen=True, slots=True)
class Rule:
    """Values made by ``producer`` at ``extractor`` came back in ``consumer`` at ``use``."""

    producer: str
    extractor: str
    consumer: str
    use: str
    count: int
    example: str  # the first value seen (cut to 16 characters)


@dataclass(slots=True)
class LearnStats:
    """Counters: every value left out and every limit reached is one of these."""

    records: int = 0
    produced: int = 0
    uses: int = 0
    bindings: int = 0
    echoed: int = 0  # answer value that was in its own request
    sent_first: int = 0  # answer value the same client had sent before
    reproduced: int = 0  # answer value already made for that client
    not_distinctive: int = 0
    premature: int = 0  # a request carried a value before the answer making it had ended
    shared: int = 0  # values made for more than shared_limit clients: constants, dropped
    expired: int = 0  # values forgotten (ttl_s or max_values)
    rules_dropped: int = 0  # uses not counted in a rule because max_rules was reached
    retracted: int = 0  # rule counts taken back: the value turned out to be a constant
    bodies_unparsed: int = 0
    bodies_not_scanned: int = 0
    leaves_cut: int = 0
    ordered: int = 0  # requests that must come after another connection's answer (same client)


# -- the wire: plain lists for JSON (a shard on disk, a master-worker message) ----------------
def learned_to_wire(learned: Learned) -> list:
    """``learned`` as nested lists of str/int (orjson-able); ``learned_from_wire`` inverts it."""
    return [list(learned.ref),
            [[p.value, [_ex(e) for e in p.extractors]] for p in learned.produced],
            [[b.value, list(b.producer), [_ex(e) for e in b.extractors],
              [[u.place, u.name, u.encoding, list(u.steps)] for u in b.uses]]
             for b in learned.bindings],
            list(learned.after) if learned.after else None]


def learned_from_wire(data: list) -> Learned:
    ref, produced, bindings, after = data if len(data) == 4 else (*data, None)
    return Learned(
        RecordRef(*ref),
        tuple(Production(v, tuple(_unex(e) for e in exs)) for v, exs in produced),
        tuple(Binding(v, RecordRef(*prod), tuple(_unex(e) for e in exs),
                      tuple(Use(p, n, enc, tuple(steps)) for p, n, enc, steps in uses))
              for v, prod, exs, uses in bindings),
        RecordRef(*after) if after else None)


def _ex(e: Extractor) -> list:
    return [e.place, e.name, e.part, list(e.steps)]


def _unex(data: list) -> Extractor:
    place, name, part, steps = data
    return Extractor(place, name, part, tuple(steps))
