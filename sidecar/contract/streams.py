"""Stream names: one stream per captured API, ``rewind:{<name>}:http``, and the archiver's group.

Capture, the archiver and the replayer name streams with ``stream_key()``, so a stream is
spelled the same way everywhere. The Redis client itself is ``sidecar.common.redis_client``.
"""

from __future__ import annotations

__all__ = ["ARCHIVER_GROUP", "KEY_PREFIX", "KEY_SUFFIX", "stream_key"]

# One stream per captured API: ``rewind:{<name>}:http``. The braces are a Redis Cluster hash
# tag: every key sharing ``{<name>}`` lands on one slot.
KEY_PREFIX = "rewind"
KEY_SUFFIX = "http"

# Consumer group the archiver reads the stream with.
ARCHIVER_GROUP = "rewind-archiver"


def stream_key(name: str) -> str:
    """The Redis key of the stream for ``name``: ``rewind:{name}:http``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream name must be a non-empty string, got {name!r}")
    bad = sorted({c for c in name if c in "{}" or c.isspace() or not c.isprintable()})
    if bad:
        raise ValueError(
            f"stream name {name!r} must not contain braces, whitespace or control characters "
            f"(found {''.join(bad)!r}); use e.g. the API's name, like 'orders-api'"
        )
    return f"{KEY_PREFIX}:{{{name}}}:{KEY_SUFFIX}"
