"""HTTP content codings: ``decoded(body, coding)`` is a body as its content (gzip, deflate, br).

A response with ``Content-Encoding: gzip`` is compared, learned from and ignored-into as what it
encodes: the one function for it, used by the replay's comparison (``replayer.judge.compare``)
and by correlation learning (``replayer.correlate``).

``coding`` is the ``Content-Encoding`` header's value (``None`` when the caller has no headers:
then gzip and zlib-wrapped deflate are recognised by their magic bytes; both end in a checksum,
so a body that merely starts like one is not mistaken for it; brotli has no magic and needs the
header). A list of codings (``gzip, br``) is undone last-applied first. A body that does not
decode (cut, corrupt, an unknown coding) or would decode past ``max_size`` bytes comes back as it
was, so a caller compares bytes as before and never raises.
"""

from __future__ import annotations

import zlib

import brotli

__all__ = ["MAX_DECODED", "coding_of", "decoded"]

MAX_DECODED = 64 << 20  # a decoded body is never allowed past this (a "zip bomb" stays bytes)
_GZIP_MAGIC = b"\x1f\x8b\x08"


def coding_of(headers) -> str | None:
    """The ``Content-Encoding`` value of ``[(name, value), ...]`` (None when absent)."""
    for k, v in headers:
        if k.lower() == "content-encoding":
            return v
    return None


def decoded(body: bytes, coding: str | None = None, max_size: int = MAX_DECODED) -> bytes:
    """``body`` as its content: the codings undone, or ``body`` itself when it cannot be."""
    if not body:
        return body
    if coding is None:
        codings = ["gzip"] if body.startswith(_GZIP_MAGIC) else (
            ["deflate"] if _zlib_header(body) else [])
    else:
        codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
    out = body
    for c in reversed(codings):
        step = _undo(c, out, max_size)
        if step is None:
            return body
        out = step
    return out


def _zlib_header(body: bytes) -> bool:
    return len(body) > 2 and body[0] & 0x0F == 8 and body[0] >> 4 <= 7 \
        and ((body[0] << 8) | body[1]) % 31 == 0


def _undo(coding: str, data: bytes, max_size: int) -> bytes | None:
    try:
        if coding in ("gzip", "x-gzip"):
            return _inflate(data, zlib.MAX_WBITS | 16, max_size)
        if coding == "deflate":  # RFC 9110: zlib-wrapped; some servers send it raw
            wbits = zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS
            return _inflate(data, wbits, max_size)
        if coding == "br":
            return _unbrotli(data, max_size)
        if coding == "identity":
            return data
    except (zlib.error, brotli.error):
        return None
    return None  # a coding this code does not know: leave the body as bytes


def _inflate(data: bytes, wbits: int, max_size: int) -> bytes | None:
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, max_size + 1)
    if len(out) > max_size or not d.eof:  # too big, or cut before its end (no checksum seen)
        return None
    return out


def _unbrotli(data: bytes, max_size: int) -> bytes | None:
    d = brotli.Decompressor()  # brotli >= 1.2: stops growing its output at the limit
    out = d.process(data, output_buffer_limit=max_size + 1)
    if len(out) > max_size or not d.is_finished():
        return None
    return out
