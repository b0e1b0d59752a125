"""Target health during a replay: what is watched (``WatchSpec``), where a value comes from
(``procfs``: a local pid's RSS; ``prometheus``: an instant PromQL query), how values are sampled
(``sampler``: every ``--watch-interval`` s, in the master, with an injected clock), a series and
its growth per hour (``series``, ``growth``), and starting and stopping it around a run
(``watcher``). Imports nothing of the engine; the report reads what ``Watcher.to_json`` gives.
"""

from replayer.watch.growth import growth_per_hour
from replayer.watch.series import Series
from replayer.watch.spec import WatchSpec
from replayer.watch.watcher import Watcher

__all__ = ["Series", "WatchSpec", "Watcher", "growth_per_hour"]
