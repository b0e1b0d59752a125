"""The publisher's packer (sidecar.capture._native.Packer) against the reference,
sidecar.contract.xadd.XaddPacker (itself pinned to hiredis in test_publisher_pack.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.capture.native import xadd_packer
from sidecar.contract.record import Record
from sidecar.contract.xadd import XaddPacker

HEAD = (b"XADD", b"rewind:{api}:http", b"MAXLEN", b"~", b"1000000", b"*")
text = st.text(max_size=30)  # latin-1 mostly, sometimes not (the reference raises then)
ints = st.one_of(st.integers(0, 2**63 - 1), st.integers(-(2**70), 2**70), st.booleans())
latin1 = st.text(st.characters(max_codepoint=255), max_size=30)  # every byte a header can hold
pairs = st.one_of(st.lists(st.tuples(latin1, latin1), max_size=5),  # the packer's own JSON
                  st.lists(st.tuples(text, text), max_size=5),  # orjson's, as the reference
                  st.lists(st.lists(latin1, max_size=3), max_size=2))
bodies = st.one_of(st.binary(max_size=200), st.binary(max_size=5).map(bytearray))


def _outcome(pack, rec: Record):
    try:
        return pack(rec)
    except Exception as exc:  # noqa: BLE001 -- both must refuse the same records
        return type(exc).__name__


@settings(max_examples=500, deadline=None)
@given(ints=st.tuples(*[ints] * 7), texts=st.tuples(*[text] * 5), hdrs=st.tuples(pairs, pairs),
       bodies=st.tuples(bodies, bodies), flags=st.tuples(*[st.one_of(st.booleans(), ints)] * 3))
def test_native_packer_writes_the_reference_bytes(ints, texts, hdrs, bodies, flags):
    """Any record (big and negative ints, bools, text in and out of latin-1, every byte value
    in bodies) packs to exactly the reference's bytes, or is refused by both."""
    rec = Record(ts_ns=ints[0], conn=texts[0], seq=ints[1], client=texts[1], method=texts[2],
                 target=texts[3], version=texts[4], headers=hdrs[0], body=bodies[0],
                 body_len=ints[2], truncated=flags[0], status=ints[3], resp_headers=hdrs[1],
                 resp_body=bodies[1], resp_body_len=ints[4], resp_truncated=flags[1],
                 latency_us=ints[5], tls=flags[2], v=ints[6])
    ref = _outcome(XaddPacker(HEAD).pack, rec)
    assert _outcome(xadd_packer(HEAD).pack, rec) == ref


def test_a_captured_record_packs_the_same():
    """A typical captured record (the bench's nginx exchange) packs the same on both."""
    rec = Record(ts_ns=1_800_000_000_000_000_000, conn="n:1:5:1800000000000000000", seq=3,
                 client="127.0.0.1:40000", method="GET", target="/", version="1.1",
                 headers=[("Host", "x")], status=200, resp_headers=[("Content-Length", "2")],
                 resp_body=b"ok", resp_body_len=2, latency_us=10)
    assert xadd_packer(HEAD).pack(rec) == XaddPacker(HEAD).pack(rec)
