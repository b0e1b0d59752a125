"""``rewind-archive``: a capture stream into zstd JSON Lines segments, crash-safely
(docs/archive.md).

Public: ``cli.main`` (the command), ``archiver`` (``Archiver``, ``ArchiverConfig``,
``ArchiveWriteFailed``; its docstring lists the durability invariants),
``metrics.ArchiveMetrics`` (the ``rewind_archive_*`` metrics). Internal to the package: ``upkeep``
(periodic jobs), ``recovery`` (start-up checks), ``group`` (the consumer-group commands), ``lock``
(consumer locks), ``config`` (re-exported by ``archiver``). The replayer reads archives through
``sidecar.contract``, never through this package. Names starting with ``_`` are internal to
their module."""
