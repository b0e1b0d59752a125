"""What a step carries for correlation (``Step.corr``), as plain lists for msgpack.

``[ref, produced, bindings, relay_to, after, awaited]``:

- ``ref``: ``[conn, seq]`` of the step's record (``RecordRef``), the key its values are bound by;
- ``produced``: ``[[recorded value, [extractor, ...]], ...]``: what its answer made and where;
- ``bindings``: ``[[recorded value, [producer conn, producer seq], [use, ...]], ...]``: the
  made values its request carries and where (the producer's extractors stay on the producer);
- ``relay_to``: workers (indices) that need this step's values (set by ``PlanLearning.link``);
- ``after``: ``[conn, seq]`` of the same client's request on another connection whose answer
  this one must follow (``Learned.after``), or None;
- ``awaited``: True when a later step follows this one's answer (``after``), if known when
  the step was shipped (informative: every step with ``corr`` announces its answer, in the
  store and relayed, since its followers may be dealt after it was sent).

A step without any of them has ``corr = None`` (most steps: nothing extra on the wire).
"""

from __future__ import annotations

from replayer.correlate import Binding, Extractor, Production, RecordRef, Use

__all__ = ["AFTER", "AWAITED", "BINDINGS", "PRODUCED", "RELAY_TO", "REF", "bindings_of",
           "corr_to_wire", "empty_corr", "produced_of", "ref_of"]

REF, PRODUCED, BINDINGS, RELAY_TO, AFTER, AWAITED = range(6)


def empty_corr(ref: tuple[str, int]) -> list:
    return [[ref[0], ref[1]], [], [], [], None, False]


def corr_to_wire(ref: RecordRef, produced: tuple[Production, ...],
                 bindings: tuple[Binding, ...], after: RecordRef | None = None) -> list | None:
    if not produced and not bindings and after is None:
        return None
    return [[ref.conn, ref.seq],
            [[p.value, [[e.place, e.name, e.part, list(e.steps)] for e in p.extractors]]
             for p in produced],
            [[b.value, [b.producer.conn, b.producer.seq],
              [[u.place, u.name, u.encoding, list(u.steps)] for u in b.uses]] for b in bindings],
            [], [after.conn, after.seq] if after is not None else None, False]


def ref_of(corr: list) -> tuple[str, int]:
    conn, seq = corr[REF]
    return conn, seq


def produced_of(corr: list) -> list[tuple[str, tuple[Extractor, ...]]]:
    return [(v, tuple(Extractor(p, n, part, tuple(st)) for p, n, part, st in exs))
            for v, exs in corr[PRODUCED]]


def bindings_of(corr: list) -> list[tuple[str, tuple[str, int], tuple[Use, ...]]]:
    return [(v, (prod[0], prod[1]), tuple(Use(p, n, enc, tuple(st)) for p, n, enc, st in uses))
            for v, prod, uses in corr[BINDINGS]]
