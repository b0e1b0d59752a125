"""Export a range to one file: JSON Lines (``.jsonl``) or zstd-compressed (``.zst`` suffix).

Lines are the archive's lines (record JSON with its stream ``id``), so an export can be read
back as a source (``--source FILE``), with ``jq``, or with ``zstdcat | jq``. The file appears
whole or not at all: it is written under a temporary name, fsynced, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import zstandard

from sidecar.contract.record import Record
from sidecar.contract.archive_lines import record_line

__all__ = ["export"]


def export(records: Iterable[tuple[str, Record]], path: Path, *, level: int = 3) -> int:
    """Write ``records`` to ``path``; how many were written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with open(tmp, "wb") as raw:
            out = (zstandard.ZstdCompressor(level=level, write_checksum=True)
                   .stream_writer(raw, closefd=False) if path.suffix == ".zst" else raw)
            buf: list[bytes] = []
            for entry_id, rec in records:
                buf.append(record_line(entry_id, rec))
                count += 1
                if len(buf) >= 1000:
                    out.write(b"".join(buf))
                    buf.clear()
            out.write(b"".join(buf))
            if out is not raw:
                out.flush(zstandard.FLUSH_FRAME)
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
