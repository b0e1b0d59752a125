"""The Redis client every command uses, in one place: connection settings, retryable errors.

Capture, the archiver and the replayer all reach Redis through ``connect()``; stream names are
``sidecar.contract.streams``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

__all__ = ["DEFAULT_URL", "RETRYABLE_ERRORS", "connect", "redact_url"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_SCHEMES = ("redis", "rediss", "unix")

# Errors worth retrying: the connection broke, timed out, or the server is still loading
# (redis.BusyLoadingError is a ConnectionError). Anything else (ResponseError: WRONGTYPE,
# OOM, ...) is an answer from Redis and retrying the same command gives the same answer.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)

# redis-py's own per-command retry: rides over a dropped connection or a blip (reconnects and
# re-sends). Kept short on purpose; long outages are the caller's back-off (see publisher.py).
COMMAND_RETRIES = 2
COMMAND_BACKOFF = ExponentialBackoff(cap=0.5, base=0.025)  # 0.05 s, then 0.1 s
HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is PINGed before use


def connect(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A bytes-returning client for ``url`` (redis://, rediss:// or unix://).

    Does not contact Redis: the first command connects. Each command is retried a couple of
    times on RETRYABLE_ERRORS with exponential back-off, then the error is raised.
    """
    _check_url(url)
    if socket_timeout <= 0:
        raise ValueError(
            f"socket_timeout must be a positive number of seconds, got {socket_timeout}"
        )
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(COMMAND_BACKOFF, COMMAND_RETRIES, supported_errors=RETRYABLE_ERRORS),
    )


def _check_url(url: str) -> None:
    """Fail before any work with a message naming what is wrong (passwords are not echoed)."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"Redis URL must be a non-empty string like {DEFAULT_URL!r}, got {url!r}")
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(
            f"Redis URL {shown!r} must start with redis://, rediss:// or unix:// "
            f"(e.g. {DEFAULT_URL!r})"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(
                f"Redis URL {shown!r} names no socket path (e.g. 'unix:///run/redis.sock')"
            )
        return
    if not parts.hostname:
        raise ValueError(f"Redis URL {shown!r} names no host (e.g. {DEFAULT_URL!r})")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise ValueError(f"Redis URL {shown!r} has an invalid port (0-65535)") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(
            f"Redis URL {shown!r}: the path must be a database number like /0, got /{db}"
        )


def redact_url(url: str) -> str:
    """A Redis URL fit for logs and messages: what redis-py would read as credentials, the user
    and password before ``@`` and a ``password=`` query value, replaced by ``***``."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    if query:
        query = "&".join("password=***" if q.partition("=")[0] == "password" else q
                         for q in query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))
