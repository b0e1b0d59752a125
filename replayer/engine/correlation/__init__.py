"""Correlation applied on replay (issue 15, phase 2): the candidate's values carried forward.

The master learns while it plans (``planning.PlanLearning``: ``replayer.correlate.Learner`` over
the records in capture order, one hook in ``build_plan``) and ships with each step what its
answer makes and what its request needs (``Step.corr``, ``stepwire``); a value made on one worker
and needed on another is relayed through the master (``relay_to``). On each worker one
``Correlator`` per run rewrites a step before it is sent (waiting, per dependency, for values
whose answer has not arrived: ``store.ValueStore``), binds the values of each answer, and
rewrites the recorded answer it is compared with (the expected answer carries the candidate's
values). ``client.CorrelatedConnection`` puts it between the pacing and the HTTP connection.
See docs/correlate.md.
"""

from replayer.engine.correlation.client import CorrelatedConnection, answer_headers
from replayer.engine.correlation.correlator import Correlator
from replayer.engine.correlation.planning import PlanLearning
from replayer.engine.correlation.setup import CorrelateSettings, build_correlator
from replayer.engine.correlation.store import GEVENT_WAITING, ValueStore
from replayer.engine.correlation.streaming import StreamLearning

__all__ = ["GEVENT_WAITING", "CorrelateSettings", "CorrelatedConnection", "Correlator",
           "PlanLearning", "StreamLearning", "ValueStore", "answer_headers", "build_correlator"]
