"""Prometheus metrics of the capture sidecar, all named ``rewind_capture_<what>_<unit>``.

``CaptureMetrics(registry)`` builds every metric on the registry it is given, so a test passes a
fresh ``CollectorRegistry()`` and reads values back with ``registry.get_sample_value``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, start_http_server

__all__ = ["KERNEL_DROP_REASONS", "CaptureMetrics"]

# Reasons the kernel side drops an event; the index is the key of the BPF `drops` map and must
# match `enum drop_reason` in bpf/capture.h.
KERNEL_DROP_REASONS = (
    "ringbuf_full",  # bpf_ringbuf_output failed: userspace did not drain fast enough
    "conn_map_full",  # a new connection did not fit the `conns` map
    "args_map_full",  # a syscall's arguments did not fit the per-thread stash
    "read_fault",  # user memory could not be read (page not present)
    "too_large",  # one syscall carried more bytes than the probe emits per call
    "iov_limit",  # a vectored call's bytes beyond the MAX_IOV iovec entries the probe follows
    "thread_map",  # a per-thread or per-process map update failed (last_read, gens)
)


class CaptureMetrics:
    """Every metric the sidecar exports; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds
        self.requests = Counter(
            "rewind_capture_requests", "Requests captured (one record each)", registry=r
        )
        self.bytes = Counter(
            "rewind_capture_bytes",
            "Payload bytes seen on captured connections",
            ["direction"],  # request (read by the server) | response (written by the server)
            registry=r,
        )
        self.events = Counter(
            "rewind_capture_events", "Events read from the kernel ring buffer", registry=r
        )
        self.dropped_events = Counter(
            "rewind_capture_dropped_events",
            "Events the kernel probe could not deliver, by reason",
            ["reason"],
            registry=r,
        )
        self.parse_errors = Counter(
            "rewind_capture_parse_errors",
            "HTTP streams that could not be parsed (the connection is skipped until it closes)",
            ["reason"],
            registry=r,
        )
        self.truncated_bodies = Counter(
            "rewind_capture_truncated_bodies",
            "Bodies stored cut at --max-body (the real length is kept)",
            ["part"],  # request | response
            registry=r,
        )
        self.incomplete = Counter(
            "rewind_capture_incomplete_messages",
            "Requests or responses abandoned half-received (closed, expired or lost bytes)",
            ["reason"],
            registry=r,
        )
        self.unanswered = Counter(
            "rewind_capture_unanswered_requests",
            "Requests published without a response (the connection ended first)",
            registry=r,
        )
        self.lost_bytes = Counter(
            "rewind_capture_lost_bytes",
            "Bytes of captured syscalls that never reached userspace (see dropped_events)",
            registry=r,
        )
        self.connections = Gauge(
            "rewind_capture_connections", "Connections currently tracked in userspace", registry=r
        )
        self.connections_opened = Counter(
            "rewind_capture_connections_opened", "Connections seen (accepted or seeded)", ["how"],
            registry=r,
        )
        self.connections_expired = Counter(
            "rewind_capture_connections_expired",
            "Connections whose state was dropped after --idle-timeout without traffic",
            registry=r,
        )
        self.listeners = Gauge(
            "rewind_capture_listeners", "Listening sockets (process, fd) being watched", registry=r
        )
        self.published = Counter(
            "rewind_capture_published_records", "Records written to Redis", registry=r
        )
        self.publish_errors = Counter(
            "rewind_capture_publish_errors",
            "Failed XADD batches or records, by kind; connection/timeout are retried",
            ["kind"],
            registry=r,
        )
        self.dropped_records = Counter(
            "rewind_capture_dropped_records",
            "Records never written to Redis, by reason",
            ["reason"],  # queue_full | rejected | shutdown
            registry=r,
        )
        self.queue_depth = Gauge(
            "rewind_capture_queue_depth", "Records waiting to be published", registry=r
        )
        self.redis_up = Gauge(
            "rewind_capture_redis_up", "1 when the last publish reached Redis", registry=r
        )
        for reason in KERNEL_DROP_REASONS:
            self.dropped_events.labels(reason)
        for d in ("request", "response"):
            self.bytes.labels(d)
        for p in ("request", "response"):
            self.truncated_bodies.labels(p)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
