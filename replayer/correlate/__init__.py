"""Correlation: values the server made during the recording and the client carried back.

Pure functions over ``Record`` objects (no I/O): ``learn.Learner`` finds them in capture order
(rules with counts, and per record what it makes and what it needs), ``substitute`` rewrites a
request with the candidate's values, ``timeshift`` moves capture-time timestamps and re-signs
JWTs. See docs/correlate.md.
"""

from replayer.correlate.extract import extract, response_values
from replayer.correlate.learn import Learner, learn
from replayer.correlate.model import Binding, Learned, LearnStats, Production, Rule
from replayer.correlate.places import Extractor, HttpRequest, RecordRef, Use
from replayer.correlate.substitute import Substituted, locate, substitute

__all__ = ["Binding", "Extractor", "HttpRequest", "LearnStats", "Learned", "Learner",
           "Production", "RecordRef", "Rule", "Substituted", "Use", "extract", "learn", "locate",
           "response_values", "substitute"]
