"""Values between workers: a worker gathers its answers into few messages (``Announcer``), and
the master passes each on only to the workers whose steps need it, one message per worker
(``StreamLearning.relayed``)."""

from __future__ import annotations

from replayer.engine.correlation import StreamLearning
from replayer.engine.correlation.relaying import Announcer
from replayer.engine.plan import endpoint_name


def test_answers_are_sent_together_within_the_interval_or_when_the_batch_is_full():
    """Answers in within ``every_s`` go in one message; a full batch goes at once; the timer
    sends what is left, and each item keeps when its answer was in."""
    sent, timers, clock = [], [], iter(range(100))
    a = Announcer(sent.append, 1, every_s=0.002, max_items=3,
                  later=lambda s, fn: timers.append((s, fn)), wall=lambda: next(clock))
    a(("c1", 0), {"r": "n"})
    a(("c2", 0), {})
    assert sent == [] and [s for s, _ in timers] == [0.002]  # one timer for the batch
    a(("c3", 1), None)  # full: sent now
    assert sent == [{"items": [[["c1", 0], {"r": "n"}, 0], [["c2", 0], {}, 1],
                               [["c3", 1], None, 2]], "from": 1}]
    a(("c4", 0), {})
    timers[0][1]()  # the first timer fires: sends the one waiting
    assert sent[-1] == {"items": [[["c4", 0], {}, 3]], "from": 1} and a.messages == 2
    a(("c5", 0), {})
    assert len(timers) == 2  # a new timer once the last one fired


def test_the_master_passes_values_only_to_the_workers_that_need_them():
    """Items of one worker's message go to each worker with a step that needs them, grouped;
    the rest is kept for consumers dealt later."""
    learning = StreamLearning(endpoint_name)
    out = []
    learning.send = lambda w, msg: out.append((w, msg))
    learning.routes[("p", 0)] = {0, 2}
    learning.routes[("q", 0)] = {2}
    learning.relayed({"items": [[["p", 0], {"a": "b"}, 1.0], [["q", 0], {}, 1.5],
                                [["z", 0], {}, 2.0]], "from": 0})
    assert out == [(2, {"items": [[["p", 0], {"a": "b"}, 1.0], [["q", 0], {}, 1.5]]})]
    assert learning.made[("z", 0)] == [["z", 0], {}, 2.0] and learning.forwarded == 2
