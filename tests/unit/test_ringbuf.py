"""Reading a BPF ring buffer through its memory layout, against a simulated kernel producer."""

from __future__ import annotations

import ctypes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.capture.ringbuf import BUSY_BIT, DISCARD_BIT, HDR_SIZE, RingBuffer, record_span


class FakeKernel:
    """The producer side of kernel/bpf/ringbuf.c: reserve (BUSY), commit or discard, with the
    data area mapped twice (every byte written appears at offset x and x + size)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cons = ctypes.c_uint64(0)
        self.prod = ctypes.c_uint64(0)
        self.mem = bytearray(2 * size)
        self.ring = RingBuffer(self.cons, self.prod, memoryview(self.mem), size)

    def _write(self, pos: int, data: bytes) -> None:
        for i, b in enumerate(data):
            x = (pos + i) % self.size
            self.mem[x] = self.mem[x + self.size] = b

    def reserve(self, payload: bytes) -> int:
        pos = self.prod.value
        span = record_span(len(payload))
        assert pos + span - self.cons.value <= self.size, "ring full"
        self._write(pos, (len(payload) | BUSY_BIT).to_bytes(4, "little") + bytes(4))
        self._write(pos + HDR_SIZE, payload)
        self.prod.value = pos + span
        return pos

    def commit(self, pos: int, discard: bool = False) -> None:
        word = int.from_bytes(self.mem[pos % self.size:pos % self.size + 4], "little")
        word &= ~BUSY_BIT
        if discard:
            word |= DISCARD_BIT
        self._write(pos, word.to_bytes(4, "little"))

    def output(self, payload: bytes) -> None:
        self.commit(self.reserve(payload))


def _collect(ring: RingBuffer, **kw) -> list[bytes]:
    got: list[bytes] = []
    ring.consume(lambda view: got.append(bytes(view)), **kw)
    return got


def test_records_come_out_in_order_and_the_consumer_catches_up():
    """Committed records are handed over whole, in order; consumer_pos ends at producer_pos."""
    k = FakeKernel(4096)
    payloads = [b"a" * n for n in (1, 7, 8, 9, 100)]
    for p in payloads:
        k.output(p)
    assert _collect(k.ring) == payloads
    assert k.cons.value == k.prod.value == sum(record_span(len(p)) for p in payloads)
    assert _collect(k.ring) == []


def test_a_busy_record_holds_back_the_ones_after_it():
    """A reserved but uncommitted record stops the walk, even if later records are committed."""
    k = FakeKernel(4096)
    k.output(b"first")
    busy = k.reserve(b"second")
    k.output(b"third")
    assert _collect(k.ring) == [b"first"]
    assert k.cons.value == busy
    k.commit(busy)
    assert _collect(k.ring) == [b"second", b"third"]
    assert k.cons.value == k.prod.value


def test_discarded_records_are_skipped_but_consumed():
    """A discarded record is never handed over; the consumer still moves past it."""
    k = FakeKernel(4096)
    k.commit(k.reserve(b"dropped"), discard=True)
    k.output(b"kept")
    assert _collect(k.ring) == [b"kept"]
    assert k.cons.value == k.prod.value


def test_a_record_wrapping_the_end_is_contiguous():
    """A record that crosses the end of the data area reads as one piece (double mapping)."""
    k = FakeKernel(256)
    k.output(b"x" * 200)
    assert _collect(k.ring) == [b"x" * 200]
    wrapped = bytes(range(120))
    k.output(wrapped)  # starts at 208, ends past 256
    assert _collect(k.ring) == [wrapped]


def test_limit_and_handler_errors():
    """``limit`` stops early; a failing handler's record counts as consumed and the error
    propagates, and the next call goes on from the following record."""
    k = FakeKernel(4096)
    for p in (b"1", b"2", b"3"):
        k.output(p)
    assert _collect(k.ring, limit=1) == [b"1"]

    def boom(view):
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        k.ring.consume(boom)
    assert _collect(k.ring) == [b"3"]


def test_poll_without_a_map_fd_does_not_block():
    """Without an epoll fd, poll() consumes what is there and returns at once."""
    k = FakeKernel(4096)
    assert k.ring.poll(lambda v: None, 1000) == 0
    k.output(b"z")
    assert k.ring.poll(lambda v: None, 1000) == 1


def test_poll_consumes_what_came_during_the_wait_without_a_wake_up():
    """A record the kernel submitted during poll()'s wait without waking the reader (the probe's
    BPF_RB_NO_WAKEUP below WAKEUP_BYTES) is delivered when the wait ends, not left behind."""
    k = FakeKernel(4096)

    class Unwoken(RingBuffer):
        def wait(self, timeout_ms: int) -> bool:
            k.output(b"quiet")  # arrives while the reader sleeps; no wake-up follows
            return False

    ring = Unwoken(k.cons, k.prod, memoryview(k.mem), k.size)
    got: list[bytes] = []
    assert ring.poll(lambda v: got.append(bytes(v)), 10) == 1
    assert got == [b"quiet"]


def test_bad_geometry_is_refused():
    """A size that is not a power of two, or a data area mapped once, is a ValueError."""
    with pytest.raises(ValueError, match="power of two"):
        RingBuffer(ctypes.c_uint64(), ctypes.c_uint64(), memoryview(bytearray(6000)), 3000)
    with pytest.raises(ValueError, match="twice"):
        RingBuffer(ctypes.c_uint64(), ctypes.c_uint64(), memoryview(bytearray(4096)), 4096)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.booleans(), st.booleans()), max_size=80),
       st.integers(1, 8))
def test_random_traffic_loses_and_reorders_nothing(ops, every):
    """Random sizes through a small ring (many wrap-arounds), some records left busy for a
    while, some discarded, the consumer reading every few records: what comes out is exactly
    the committed, non-discarded payloads, in order."""
    k = FakeKernel(1024)
    want: list[bytes] = []
    got: list[bytes] = []
    held: list[int] = []
    for i, (n, hold, discard) in enumerate(ops):
        payload = bytes([i % 251]) * n
        while k.prod.value + record_span(n) - k.cons.value > k.size:  # ring full: drain
            for pos in held:
                k.commit(pos)
            held.clear()
            k.ring.consume(lambda v: got.append(bytes(v)))
        pos = k.reserve(payload)
        if not discard:
            want.append(payload)
        if hold and not discard:
            held.append(pos)
        else:
            k.commit(pos, discard=discard)
        if i % every == 0:
            k.ring.consume(lambda v: got.append(bytes(v)))
    for pos in held:
        k.commit(pos)
    k.ring.consume(lambda v: got.append(bytes(v)))
    assert got == want
    assert k.cons.value == k.prod.value
