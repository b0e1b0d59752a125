"""``rewind-inspect correlations``: the values a range's answers made and its requests carried
back, as rules with how often each was seen (``replayer.correlate``)."""

from __future__ import annotations

import dataclasses
import sys

import orjson

from replayer.correlate import Learner
from replayer.engine.plan import endpoint_name
from replayer.inspect.views import table

__all__ = ["run"]


def run(args, records, out, err=None) -> int:
    """Learn over ``records`` ((id, Record) pairs, capture order), print the rules; returns the
    number of records read."""
    err = err or sys.stderr
    learner = Learner(endpoint_name, ttl_s=args.ttl, max_values=args.max_values)
    n = 0
    for _id, rec in records:
        learner.feed(rec)
        n += 1
    rules = [r for r in learner.rules() if r.count >= args.min_count]
    if args.jsonl:
        for r in rules[: args.top]:
            out.write(orjson.dumps(dataclasses.asdict(r)).decode() + "\n")
    elif rules:
        rows = [["COUNT", "MADE BY", "AT", "USED BY", "AT", "E.G."]]
        rows += [[f"{r.count:,}", r.producer, r.extractor, r.consumer, r.use, r.example]
                 for r in rules[: args.top]]
        out.write(table(rows, right={0}) + "\n")
        if len(rules) > args.top:
            out.write(f"({len(rules) - args.top} more rules; --top to see them)\n")
    if n:
        s = learner.stats
        print(f"{n:,} records: {s.produced:,} values made, {s.bindings:,} carried back "
              f"({s.uses:,} uses); left out: {s.echoed:,} echoed, {s.sent_first:,} sent by the "
              f"client first, {s.not_distinctive:,} not distinctive, {s.shared:,} constants, "
              f"{s.premature:,} used before made; {s.expired:,} forgotten (--ttl/--max-values), "
              f"{s.rules_dropped:,} uses past the rule limit, {s.bodies_unparsed:,} bodies "
              "unparsed", file=err)
    return n
