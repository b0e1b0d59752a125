"""The archiver's side of Redis: one consumer of the group ``rewind-archiver`` on one stream.

Every command the archiver sends lives here, so the consumer-group protocol reads in one place:
create the group (BUSYGROUP is success), read new entries (``XREADGROUP >``), read this
consumer's own pending entries (``XREADGROUP 0``), move a dead consumer's pending entries to
this one (``XPENDING`` + ``XCLAIM JUSTID``), ``XACK`` after the data is durable, and compute the
id below which everything is archived (for ``XTRIM MINID``).

Why not ``XAUTOCLAIM``: it takes idle entries from *any* consumer, including a live sibling
whose open segment holds them (entries stay pending until their segment closes, up to
``--segment-seconds``); a claim there would write them twice. Claims here are per consumer and
only from consumers known to be dead (see ``sidecar.archive.lock``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import redis

from sidecar.contract.stream_ids import MAX_ID, StreamId, format_id, next_id, parse_id
from sidecar.contract.archive_progress import GroupState, group_state
from sidecar.contract.streams import ARCHIVER_GROUP, stream_key

__all__ = ["ArchiveGroup", "Consumer", "Entry", "GroupState"]

ACK_CHUNK = 5000


class Entry(NamedTuple):
    """A stream entry as read from Redis."""

    id: bytes
    fields: dict[bytes, bytes]  # {} when the entry was deleted from the stream (trimmed)


def _entries(rows) -> list[Entry]:
    return list(map(Entry._make, rows))


@dataclass(frozen=True)
class Consumer:
    """A consumer of the group, as ``XINFO CONSUMERS`` lists it."""

    name: str
    pending: int
    idle_ms: int


class ArchiveGroup:
    """Every command the archiver sends for one consumer of the group on one stream."""

    def __init__(self, client: redis.Redis, stream: str, consumer: str,
                 group: str = ARCHIVER_GROUP) -> None:
        self.client = client
        self.key = stream_key(stream)
        self.group = group
        self.consumer = consumer

    def ensure(self) -> bool:
        """Create the group at the start of the stream (and the stream if missing). True when
        created, False when it existed (BUSYGROUP)."""
        try:
            self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
            return True
        except redis.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise

    def read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        """Entries never delivered to the group, oldest first (``XREADGROUP >``)."""
        resp = self.client.xreadgroup(self.group, self.consumer, {self.key: ">"},
                                      count=count, block=block_ms)
        return _entries(resp[0][1]) if resp else []

    def read_own_pending(self, after: StreamId, count: int) -> list[Entry]:
        """This consumer's pending entries with id > ``after``, oldest first."""
        resp = self.client.xreadgroup(self.group, self.consumer, {self.key: format_id(after)},
                                      count=count)
        return _entries(resp[0][1]) if resp else []

    def consumers(self) -> list[Consumer]:
        try:
            rows = self.client.xinfo_consumers(self.key, self.group)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []
            raise
        return [Consumer(_text(r["name"]), int(r["pending"]), int(r["idle"])) for r in rows]

    def claim_all_of(self, consumer: str, page: int = 1000) -> int:
        """Move every pending entry of ``consumer`` to this consumer; how many moved."""
        moved = 0
        start = "-"
        while True:
            rows = self.client.xpending_range(self.key, self.group, start, "+", page, consumer)
            if not rows:
                return moved
            ids = [r["message_id"] for r in rows]
            self.client.xclaim(self.key, self.group, self.consumer, 0, ids, justid=True)
            moved += len(ids)
            start = format_id(next_id(parse_id(ids[-1])))

    def delete_consumer(self, consumer: str) -> None:
        self.client.xgroup_delconsumer(self.key, self.group, consumer)

    def ack(self, ids: Iterable[bytes | str]) -> None:
        """XACK in chunks, in one pipeline. Acking an id twice is harmless."""
        ids = list(ids)
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, len(ids), ACK_CHUNK):
            pipe.xack(self.key, self.group, *ids[i:i + ACK_CHUNK])
        pipe.execute()

    def state(self) -> GroupState:
        """Pending count, oldest pending id, last delivered id and lag, atomically."""
        return group_state(self.client, self.key, self.group)

    def pending_ids(self, lo: StreamId, hi: StreamId, page: int = 5000) -> set[str]:
        """Ids pending in the group (any consumer) within [lo, hi]."""
        out: set[str] = set()
        start = lo
        while start <= hi:
            rows = self.client.xpending_range(self.key, self.group, format_id(start),
                                              format_id(hi), page)
            if not rows:
                break
            out.update(_text(r["message_id"]) for r in rows)
            start = next_id(parse_id(rows[-1]["message_id"]))
        return out

    def xrange(self, lo: StreamId, hi: StreamId, count: int) -> list[Entry]:
        return _entries(self.client.xrange(self.key, format_id(lo), format_id(hi), count=count))

    def first_id(self) -> StreamId | None:
        """The stream's oldest entry id (None when empty or missing)."""
        first = _entries(self.client.xrange(self.key, "-", "+", count=1))
        return parse_id(first[0].id) if first else None

    def head(self) -> StreamId | None:
        """The stream's newest entry id (None when empty or missing)."""
        last = _entries(self.client.xrevrange(self.key, "+", "-", count=1))
        return parse_id(last[0].id) if last else None

    def length(self) -> int:
        """``XLEN``: entries in the stream (0 when it does not exist)."""
        return int(self.client.xlen(self.key))

    def trim_archived(self, not_after: StreamId = MAX_ID) -> int:
        """``XTRIM MINID``: drop entries below the oldest one not yet archived (pending, or not
        yet delivered), and not above ``not_after``. How many entries Redis removed."""
        st = self.state()
        minid = st.min_pending if st.min_pending is not None else next_id(st.last_delivered)
        minid = min(minid, not_after)
        if minid <= (0, 1):
            return 0
        return int(self.client.xtrim(self.key, minid=format_id(minid)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
