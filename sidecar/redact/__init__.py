"""Redaction before storage (docs/capture.md, Redaction).

Public: ``setup`` (``load_settings``, ``RedactingPublisher``, ``log_start``: what
``rewind-capture`` wires in), ``policy`` (``Policy``, ``load_policy``, ``parse_policy``,
``PolicyError``), ``apply.Redactor``, ``metrics.RedactMetrics``, ``check.main``
(``rewind-capture --redact-check``). Internal: ``json_rules`` (used by ``apply``). Names starting
with ``_`` are internal to their module."""
