"""How far the archiver got: one consistent snapshot of its consumer group on a stream.

The archiver trims and reports from it; ``rewind-inspect`` shows it. Read-only: every command
that changes the group lives in ``sidecar.archive.group``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from sidecar.contract.stream_ids import StreamId, parse_id

__all__ = ["GroupState", "group_state"]


@dataclass(frozen=True)
class GroupState:
    """One consistent (MULTI) snapshot of the group."""

    pending: int
    min_pending: StreamId | None
    last_delivered: StreamId
    lag: int | None  # entries not yet delivered (None when Redis cannot tell)


def group_state(client: redis.Redis, key: str, group: str) -> GroupState:
    """Pending count, oldest pending id, last delivered id and lag of ``group`` on the stream
    ``key``, atomically. Raises redis.ResponseError (NOGROUP) when the group does not exist."""
    pipe = client.pipeline(transaction=True)
    pipe.xpending(key, group)
    pipe.xinfo_groups(key)
    summary, groups = pipe.execute()
    mine = next((g for g in groups if _text(g["name"]) == group), None)
    if mine is None:
        raise redis.ResponseError(f"NOGROUP no group {group} on {key}")
    lag = mine.get("lag")
    return GroupState(
        pending=int(summary["pending"]),
        min_pending=parse_id(summary["min"]) if summary["pending"] else None,
        last_delivered=parse_id(mine["last-delivered-id"]),
        lag=int(lag) if lag is not None else None,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
