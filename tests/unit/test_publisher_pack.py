"""The publisher's XADD packing: the same bytes with or without hiredis."""

from __future__ import annotations

import hiredis

from sidecar.publisher import _pack_python


def test_python_packing_matches_hiredis():
    """The fallback RESP encoder writes exactly what hiredis.pack_command writes, ints and
    binary values included."""
    args = (b"XADD", b"rewind:{api}:http", b"MAXLEN", b"~", b"1000", b"*",
            "v", 1, "body", bytes(range(256)), "empty", b"", "ts_ns", 1_700_000_000_000_000_000)
    assert _pack_python(args) == hiredis.pack_command(args)
