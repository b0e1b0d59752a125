"""Metrics of the redaction step, on the capture sidecar's registry (``rewind_capture_*``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["RULE_KINDS", "RedactMetrics"]

# default_header: a built-in secret header; header: the policy's deny list; allow_list: a header
# not on the allow list; json, query, regex: the policy's rules of that kind.
RULE_KINDS = ("default_header", "header", "allow_list", "json", "query", "regex")


class RedactMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.fields = Counter(
            "rewind_capture_redacted_fields",
            "Values masked or dropped by the redaction policy, by kind of rule",
            ["rule_kind"], registry=r)
        self.dropped_requests = Counter(
            "rewind_capture_policy_dropped_requests",
            "Records not stored because a drop_request rule matched", registry=r)
        self.unparsed = Counter(
            "rewind_capture_redaction_unparsed_bodies",
            "JSON bodies a json rule could not be applied to (only regex rules ran)",
            ["part", "reason"],  # request|response; truncated | invalid_json | encoded
            registry=r)
        self.errors = Counter(
            "rewind_capture_redaction_errors",
            "Records not stored because redaction failed on them (never stored unredacted)",
            registry=r)
        for kind in RULE_KINDS:
            self.fields.labels(kind)
