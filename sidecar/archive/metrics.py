"""Prometheus metrics of the archiver, all named ``rewind_archive_<what>_<unit>``.

``ArchiveMetrics(registry)`` builds every metric on the registry it is given, so a test passes a
fresh ``CollectorRegistry()`` and reads values back with ``registry.get_sample_value``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, start_http_server

__all__ = ["LOST_REASONS", "WRITE_ERROR_KINDS", "ArchiveMetrics"]

WRITE_ERROR_KINDS = ("no_space", "read_only", "permission", "io", "other")
LOST_REASONS = ("deleted_before_archived", "corrupt_segment_trimmed")


class ArchiveMetrics:
    """Every metric the archiver exports; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds
        self.records = Counter(
            "rewind_archive_records", "Records durably archived (in a segment, fsynced, acked)",
            registry=r)
        self.bytes_written = Counter(
            "rewind_archive_bytes_written", "Compressed segment bytes written", registry=r)
        self.raw_bytes = Counter(
            "rewind_archive_raw_bytes", "JSON Lines bytes archived, before compression", registry=r)
        self.compression_ratio = Gauge(
            "rewind_archive_compression_ratio",
            "JSON Lines bytes / compressed bytes, over every segment this process wrote",
            registry=r)
        self.segments = Counter(
            "rewind_archive_segments", "Segments closed and listed in the manifest", registry=r)
        self.lag_records = Gauge(
            "rewind_archive_lag_records",
            "Stream entries not yet delivered to the archiver group (XINFO GROUPS lag)", registry=r)
        self.lag_seconds = Gauge(
            "rewind_archive_lag_seconds",
            "Age of the oldest entry not yet archived: stream head time - archived time", registry=r)
        self.pending = Gauge(
            "rewind_archive_pending_entries",
            "Entries delivered to the group but not acked (being written, or of a dead consumer)",
            registry=r)
        self.write_errors = Counter(
            "rewind_archive_segment_write_errors",
            "Segment writes that failed (nothing of them was acked), by kind", ["kind"], registry=r)
        self.duplicates_skipped = Counter(
            "rewind_archive_duplicates_skipped",
            "Re-delivered entries found already archived (acked, not written again)", registry=r)
        self.claimed = Counter(
            "rewind_archive_claimed_entries",
            "Pending entries taken over from a dead consumer", registry=r)
        self.bad_entries = Counter(
            "rewind_archive_bad_entries",
            "Stream entries that are not rewind records (kept in rejected.jsonl, acked)",
            registry=r)
        self.lost = Counter(
            "rewind_archive_lost_entries",
            "Entries that could not be archived, by reason", ["reason"], registry=r)
        self.corrupt_segments = Counter(
            "rewind_archive_corrupt_segments",
            "Segments found corrupt or truncated at start-up and set aside", registry=r)
        self.repaired = Counter(
            "rewind_archive_repaired_records",
            "Records of corrupt segments archived again from Redis", registry=r)
        self.trimmed = Counter(
            "rewind_archive_trimmed_entries",
            "Entries removed from Redis after being archived (--trim-archived)", registry=r)
        self.deleted_segments = Counter(
            "rewind_archive_deleted_segments", "Segments removed by --keep-days", registry=r)
        self.stream_length = Gauge(
            "rewind_archive_stream_length", "Entries in the Redis stream (XLEN)", registry=r)
        self.stream_maxlen = Gauge(
            "rewind_archive_stream_maxlen",
            "The capture's approximate cap on the stream (--stream-maxlen, as the capture's "
            "--maxlen); 0 when not given", registry=r)
        self.redis_up = Gauge(
            "rewind_archive_redis_up", "1 when the last Redis command succeeded", registry=r)
        for kind in WRITE_ERROR_KINDS:
            self.write_errors.labels(kind)
        for reason in LOST_REASONS:
            self.lost.labels(reason)
        self._raw_total = 0
        self._written_total = 0

    def segment_written(self, count: int, raw_bytes: int, written: int) -> None:
        self.records.inc(count)
        self.raw_bytes.inc(raw_bytes)
        self.bytes_written.inc(written)
        self.segments.inc()
        self._raw_total += raw_bytes
        self._written_total += written
        if self._written_total:
            self.compression_ratio.set(self._raw_total / self._written_total)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
