"""``content_coding.decoded``: gzip, deflate and br bodies read as their content, anything else
left as bytes, and a body that would decode past the limit kept as it was."""

from __future__ import annotations

import gzip
import zlib

import brotli
import orjson
from hypothesis import given
from hypothesis import strategies as st

from replayer.judge.compare import body_diffs
from sidecar.contract.jsonpath import parse_path
from sidecar.contract.content_coding import coding_of, decoded

DOC = orjson.dumps({"id": 7, "ts": "2026-12-04T10:00:00Z", "items": list(range(50))})


def test_each_coding_by_header():
    """gzip, x-gzip, deflate (zlib-wrapped and raw), br and a chain decode to the same content."""
    raw_deflate = zlib.compressobj(wbits=-15)
    raw = raw_deflate.compress(DOC) + raw_deflate.flush()
    assert decoded(gzip.compress(DOC), "gzip") == DOC
    assert decoded(gzip.compress(DOC), "x-gzip") == DOC
    assert decoded(zlib.compress(DOC), "deflate") == DOC
    assert decoded(raw, "deflate") == DOC
    assert decoded(brotli.compress(DOC), "br") == DOC
    assert decoded(brotli.compress(gzip.compress(DOC)), "gzip, br") == DOC
    assert decoded(DOC, "identity") == DOC


def test_sniffed_without_header():
    """Without a header gzip and zlib are found by their magic bytes; br is not guessed."""
    assert decoded(gzip.compress(DOC)) == DOC
    assert decoded(zlib.compress(DOC)) == DOC
    assert decoded(brotli.compress(DOC)) == brotli.compress(DOC)


def test_broken_or_unknown_stays_bytes():
    """A cut stream, a wrong coding or an unknown one gives the body back unchanged."""
    gz = gzip.compress(DOC)
    assert decoded(gz[:-6], "gzip") == gz[:-6]
    assert decoded(DOC, "gzip") == DOC
    assert decoded(DOC, "br") == DOC
    assert decoded(gz, "compress") == gz


def test_size_limit():
    """A body that would decode past ``max_size`` stays coded (no unbounded memory)."""
    big = b"x" * 100_000
    for coded, coding in ((gzip.compress(big), "gzip"), (brotli.compress(big), "br")):
        assert decoded(coded, coding, max_size=99_999) == coded
        assert decoded(coded, coding, max_size=100_000) == big


def test_coding_of():
    """The header is found whatever its case."""
    assert coding_of([("Content-Type", "x"), ("content-ENCODING", "gzip")]) == "gzip"
    assert coding_of([]) is None


@given(st.binary(max_size=64))
def test_plain_bytes_never_change(body):
    """Bytes that are not a complete gzip/zlib stream come back as they were."""
    from sidecar.contract.content_coding import _zlib_header

    if not (body.startswith(b"\x1f\x8b\x08") or _zlib_header(body)):
        assert decoded(body) == body


def test_compare_reads_gzip_as_json():
    """Two gzip JSON answers that differ only in an ignored field have no body difference."""
    a = gzip.compress(orjson.dumps({"ts": 1, "v": "x"}), mtime=1)
    b = gzip.compress(orjson.dumps({"ts": 2, "v": "x"}), mtime=2)
    assert body_diffs(a, b, [parse_path("$.ts")]) == []
    assert body_diffs(a, b) == ["$.ts"]
    assert body_diffs(gzip.compress(b"text", mtime=1), gzip.compress(b"text", mtime=2)) == []
