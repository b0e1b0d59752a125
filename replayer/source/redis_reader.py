"""Reading a capture stream in Redis by stream id, page by page (``XRANGE ... COUNT``).

Each page is read in one MULTI with the stream's current boundary (its oldest entry, or the next
id after the last one ever added when it is empty), so a caller can tell when trimming removed
entries it has not read yet (see ``source.JoinedSource``).
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from sidecar.contract.archive_progress import group_state
from sidecar.contract.record import Record
from sidecar.contract.stream_ids import StreamId, format_id, next_id, parse_id
from sidecar.contract.streams import ARCHIVER_GROUP, stream_key

from replayer.source.window import Span

__all__ = ["RedisReader"]

PAGE = 1000


def decode_fields(fields: dict) -> Record:
    return Record.from_fields(fields)


class RedisReader:
    def __init__(self, client: redis.Redis, stream: str, *, where: str = "", page: int = PAGE) -> None:
        self.client = client
        self.stream = stream
        self.key = stream_key(stream)
        self.where = where
        self.page = page

    def boundary(self) -> StreamId | None:
        """Ids at or above this are all still in Redis; None when the stream does not exist."""
        try:
            info = self.client.xinfo_stream(self.key)
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise
        return _boundary(info)

    def page_at(self, cursor: StreamId, hi: StreamId) -> tuple[list, StreamId | None]:
        """One page of entries in [cursor, hi] and the boundary at that instant (atomically)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xrange(self.key, format_id(cursor), format_id(hi), count=self.page)
        pipe.xinfo_stream(self.key)
        rows, info = pipe.execute(raise_on_error=False)
        if isinstance(info, redis.ResponseError):
            if "no such key" in str(info).lower():
                return [], None
            raise info
        if isinstance(rows, Exception):
            raise rows
        return rows, _boundary(info)

    def entries(self, lo: StreamId, hi: StreamId, ts_lo: int | None = None,
                ts_hi: int | None = None) -> Iterator[tuple]:
        """Entries with lo <= id <= hi, in id order, as (id, ts_ns, fields, decode); the time
        range is left to the caller."""
        cursor = lo
        while cursor <= hi:
            rows = self.client.xrange(self.key, format_id(cursor), format_id(hi), count=self.page)
            yield from self.items(rows)
            if len(rows) < self.page:
                return
            cursor = next_id(parse_id(rows[-1][0]))

    @staticmethod
    def items(rows: list) -> Iterator[tuple]:
        for eid, fields in rows:
            ts = int(fields.get(b"ts_ns", 0) or 0)
            yield parse_id(eid), ts, fields, decode_fields

    def span(self) -> Span:
        where = f"{self.where} {self.key}".strip()
        try:
            info = self.client.xinfo_stream(self.key)
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return Span("redis", where, 0, detail="no such stream")
            raise
        first, last = info.get("first-entry"), info.get("last-entry")
        detail = ""
        try:
            groups = {g["name"].decode(): g for g in self.client.xinfo_groups(self.key)}
            g = groups.get(ARCHIVER_GROUP)
            if g is not None:
                state = group_state(self.client, self.key, ARCHIVER_GROUP)
                detail = f"archiver: {state.lag} not yet read, {state.pending} pending"
        except redis.ResponseError:
            pass
        return Span(
            "redis", where, int(info["length"]),
            first_id=first[0].decode() if first else None,
            last_id=last[0].decode() if last else None,
            first_ts_ns=_ts(first), last_ts_ns=_ts(last), detail=detail,
        )


def _boundary(info: dict) -> StreamId:
    first = info.get("first-entry")
    if first:
        return parse_id(first[0])
    return next_id(parse_id(info.get("last-generated-id") or b"0-0"))


def _ts(entry) -> int | None:
    if not entry or not entry[1]:
        return None
    try:
        return int(entry[1][b"ts_ns"])
    except (KeyError, ValueError):
        return None
