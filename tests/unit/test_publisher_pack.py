"""The publisher's XADD packing (sidecar.contract.xadd): the bytes hiredis writes for the same command."""

from __future__ import annotations

import hiredis
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.contract.record import Record
from sidecar.contract.xadd import FIELDS, XaddPacker

HEAD = (b"XADD", b"rewind:{api}:http", b"MAXLEN", b"~", b"1000000", b"*")
latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
headers = st.lists(st.tuples(latin1, latin1), max_size=6)


def _hiredis(rec: Record) -> bytes:
    args = list(HEAD)
    for item in rec.to_fields().items():
        args += item
    return hiredis.pack_command(tuple(args))


def test_fields_are_those_of_to_fields_in_order():
    """The packer writes the fields ``Record.to_fields`` has, in its order."""
    assert tuple(Record(ts_ns=0, conn="", seq=0, client="", method="GET", target="/",
                        version="1.1").to_fields()) == FIELDS


@settings(max_examples=300, deadline=None)
@given(
    ts=st.integers(0, 2**63 - 1), seq=st.integers(0, 2**40), client=latin1, method=latin1,
    target=latin1, version=st.sampled_from(["1.0", "1.1"]), hdrs=headers, resp_hdrs=headers,
    body=st.binary(max_size=300), resp_body=st.binary(max_size=300),
    lens=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40)),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()), status=st.integers(0, 999),
)
def test_packing_matches_hiredis(ts, seq, client, method, target, version, hdrs, resp_hdrs,
                                 body, resp_body, lens, flags, status):
    """Any record (every byte value in bodies, latin-1 text, big ints, flags) packs to exactly
    what ``hiredis.pack_command`` makes of ``to_fields()``."""
    rec = Record(ts_ns=ts, conn=f"node:1:2:{ts}", seq=seq, client=client, method=method,
                 target=target, version=version, headers=hdrs, body=body, body_len=lens[0],
                 truncated=flags[0], status=status, resp_headers=resp_hdrs, resp_body=resp_body,
                 resp_body_len=lens[1], resp_truncated=flags[1], latency_us=lens[2], tls=flags[2])
    assert XaddPacker(HEAD).pack(rec) == _hiredis(rec)
