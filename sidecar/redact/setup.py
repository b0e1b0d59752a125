"""Wiring of the redaction step into rewind-capture: the key, the policy, and a publisher wrapper
that redacts each record before it is queued for XADD.

Key: ``--redact-key-file`` (a mounted Kubernetes Secret, say) holds at least 16 bytes; trailing
white space is ignored. Without one, a random key is drawn for this process and a warning is
logged: records are still masked, but tokens differ between sidecars and across restarts.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from sidecar.redact.apply import Redactor
from sidecar.redact.metrics import RedactMetrics
from sidecar.redact.policy import Policy, PolicyError, load_policy

__all__ = ["MIN_KEY_BYTES", "RedactConfigError", "RedactKey", "RedactSettings", "RedactingPublisher",
           "describe", "load_key", "load_settings", "log_start"]

MIN_KEY_BYTES = 16


class RedactConfigError(ValueError):
    """A policy or key file that cannot be used; the message is one line for the user."""


class RedactKey(NamedTuple):
    """The HMAC key of masked tokens and where it came from."""

    key: bytes
    origin: str  # "file" | "random"


class RedactSettings(NamedTuple):
    """What the redaction flags give: the policy and the key."""

    policy: Policy
    key: bytes
    key_origin: str  # "file" | "random"


def load_key(path: str | None) -> RedactKey:
    """The key in ``path``; a random key when ``path`` is None."""
    if not path:
        return RedactKey(key=os.urandom(32), origin="random")
    try:
        with open(path, "rb") as f:
            key = f.read().rstrip(b" \t\r\n")
    except OSError as exc:
        raise RedactConfigError(f"--redact-key-file: cannot read {path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise RedactConfigError(f"--redact-key-file: {path} holds {len(key)} bytes; use at least "
                                f"{MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom | base64)")
    return RedactKey(key=key, origin="file")


def load_settings(policy_path: str | None, key_path: str | None) -> RedactSettings:
    """Policy and key from the flags; RedactConfigError before any work starts."""
    try:
        policy = load_policy(policy_path) if policy_path else Policy()
    except PolicyError as exc:
        raise RedactConfigError(f"--redact-policy: {exc}") from None
    key = load_key(key_path)
    return RedactSettings(policy=policy, key=key.key, key_origin=key.origin)


class RedactingPublisher:
    """``put(record)``: redact, then hand over to ``publisher.put``. A record the redactor fails
    on is counted, logged and not stored: nothing leaves unredacted."""

    def __init__(self, publisher, policy: Policy, key: bytes, *, registry, log) -> None:
        self.metrics = RedactMetrics(registry)
        self.redactor = Redactor(policy, key, self.metrics, log=log)
        self._put = publisher.put
        self._put_many = getattr(publisher, "put_many", None)
        self._log = log

    def put(self, record) -> None:
        try:
            out = self.redactor.apply(record)
        except Exception:
            self.metrics.errors.inc()
            self._log.exception("redact.failed", conn=record.conn, seq=record.seq)
            return
        if out is not None:
            self._put(out)

    def put_many(self, records: list) -> None:
        """``put()`` for a batch: each record redacted (or counted and left out), the kept ones
        handed to the publisher at once when it takes batches."""
        if self._put_many is None:
            for record in records:
                self.put(record)
            return
        apply, kept = self.redactor.apply, []
        for record in records:
            try:
                out = apply(record)
            except Exception:
                self.metrics.errors.inc()
                self._log.exception("redact.failed", conn=record.conn, seq=record.seq)
                continue
            if out is not None:
                kept.append(out)
        self._put_many(kept)


def describe(policy: Policy, origin: str) -> dict:
    """What the policy does, for the start-up log line ``redact.policy``."""
    return {
        "source": policy.source, "key": origin, "default_headers": policy.default_headers,
        "headers": len(policy.headers), "allow_headers": None if policy.allow_headers is None
        else len(policy.allow_headers), "json": len(policy.json), "query": len(policy.query),
        "regex": len(policy.regex), "drop_request": len(policy.drop_request),
        "on_unparsed_body": policy.on_unparsed_body,
    }


def log_start(log, policy: Policy, origin: str) -> None:
    log.info("redact.policy", **describe(policy, origin))
    if origin == "random":
        log.warning("redact.random_key", hint="no --redact-key-file: masked tokens are stable in "
                    "this process only, not across sidecars or restarts")
    if not policy.default_headers:
        log.warning("redact.default_headers_off", hint="Authorization, Cookie, Set-Cookie, "
                    "Proxy-Authorization and X-Api-Key are stored as captured")
