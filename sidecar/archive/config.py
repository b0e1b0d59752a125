"""The archiver's settings (``rewind-archive``'s flags), read by the archiver and its upkeep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ArchiverConfig"]


@dataclass
class ArchiverConfig:
    stream: str
    root: Path  # this stream's archive folder: <--out>/<stream>
    consumer: str
    segment_bytes: int = 64 << 20  # JSON Lines bytes before compression
    segment_seconds: float = 60.0
    batch: int = 1000
    block_ms: int = 1000
    level: int = 3
    threads: int = 0  # zstd worker threads (0: compress in the calling thread)
    trim_archived: bool = False
    trim_keep_s: float = 0.0
    keep_days: float | None = None
    claim_interval_s: float = 30.0
    claim_idle_s: float = 600.0
    write_retry_for_s: float = 300.0
    verify_all: bool = False
    lock_wait_s: float = 0.0
    stream_maxlen: int | None = None  # the capture's --maxlen, for the stream-length gauges
