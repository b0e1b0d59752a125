"""Redaction before storage: the policy, how it is applied to a record, JSON rules, the
--redact-check command and its metrics."""
