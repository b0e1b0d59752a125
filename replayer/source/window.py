"""What to read (``Window``) and what a source holds (``Span``).

A window is a capture-time range (``start_ns`` inclusive, ``end_ns`` exclusive, compared with a
record's ``ts_ns``), a stream-id range (both ends inclusive), or both (a record must be in
both). It is the one window of every reader: ``rewind-replay`` and ``rewind-inspect`` turn
``--from``/``--to`` into it the same way (a time ``--to`` is exclusive, an id ``--to`` names the
last entry read). Sources find records by stream id, so a time window is looked up as the id range
``[start - margin, end + margin]`` and then filtered by ``ts_ns``: stream ids are the time Redis
received the XADD, which follows the capture time by the publisher's delay (milliseconds
normally; as long as Redis was unreachable, at worst) and differs by the clock skew between the
sidecar's machine and Redis's. A record published more than ``margin`` after its capture time
(or stamped by a clock more than ``margin`` off) near a window's edge is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.contract.stream_ids import MAX_ID, MIN_ID, StreamId, format_id

from replayer.source.timespec import format_ns

__all__ = ["DEFAULT_MARGIN_NS", "Span", "Window"]

DEFAULT_MARGIN_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Window:
    start_ns: int | None = None
    end_ns: int | None = None
    start_id: StreamId | None = None
    end_id: StreamId | None = None

    def __post_init__(self) -> None:
        if self.start_ns is not None and self.end_ns is not None and self.end_ns < self.start_ns:
            raise ValueError(f"the window ends ({format_ns(self.end_ns)}) before it starts "
                             f"({format_ns(self.start_ns)})")
        if self.start_id is not None and self.end_id is not None and self.end_id < self.start_id:
            raise ValueError(f"the id window ends ({format_id(self.end_id)}) before it starts "
                             f"({format_id(self.start_id)})")

    @property
    def timed(self) -> bool:
        return self.start_ns is not None or self.end_ns is not None

    def id_bounds(self, margin_ns: int = DEFAULT_MARGIN_NS) -> tuple[StreamId, StreamId]:
        """The stream-id range to scan: the id window, narrowed by the time window +- margin."""
        lo = self.start_id or MIN_ID
        hi = self.end_id or MAX_ID
        if self.start_ns is not None:
            lo = max(lo, (max(0, (self.start_ns - margin_ns) // 1_000_000), 0))
        if self.end_ns is not None:
            hi = min(hi, ((self.end_ns + margin_ns) // 1_000_000, MAX_ID[1]))
        return lo, hi

    def contains(self, entry_id: StreamId, ts_ns: int) -> bool:
        return ((self.start_ns is None or ts_ns >= self.start_ns)
                and (self.end_ns is None or ts_ns < self.end_ns)
                and (self.start_id is None or entry_id >= self.start_id)
                and (self.end_id is None or entry_id <= self.end_id))

    def describe(self) -> str:
        parts = []
        if self.timed:
            parts.append(f"{format_ns(self.start_ns)} .. {format_ns(self.end_ns)}")
        if self.start_id is not None or self.end_id is not None:
            parts.append(f"ids {format_id(self.start_id) if self.start_id else '-'} .. "
                         f"{format_id(self.end_id) if self.end_id else '+'}")
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class Span:
    """What one place holds. Times are capture times; for Redis they are the first and last
    entries' (capture order and stream order differ slightly, see ``Window``)."""

    kind: str  # "redis" | "archive" | "file"
    where: str  # URL (without password) + key, folder, or file
    count: int
    first_id: str | None = None
    last_id: str | None = None
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    detail: str = ""  # e.g. segments, archiver lag

    def to_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "count": self.count,
                "first_id": self.first_id, "last_id": self.last_id,
                "first_time": format_ns(self.first_ts_ns) if self.first_ts_ns else None,
                "last_time": format_ns(self.last_ts_ns) if self.last_ts_ns else None,
                "first_ts_ns": self.first_ts_ns, "last_ts_ns": self.last_ts_ns,
                "detail": self.detail}
