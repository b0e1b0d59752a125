"""rewind-archive: the archiver, its consumer group, recovery, locks, upkeep and metrics."""
