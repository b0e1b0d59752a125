"""Reads a BPF ring buffer (``BPF_MAP_TYPE_RINGBUF``) through its memory mapping, in one Python
loop per poll, instead of through bcc's ctypes callback per record.

The kernel's layout (kernel/bpf/ringbuf.c, the same one libbpf's ``ring_buffer__poll`` reads):

* offset 0 of the map fd: one page holding ``consumer_pos`` (u64), mapped read-write; only
  the consumer writes it, the kernel reads it to know how much room is free;
* offset PAGE: one page holding ``producer_pos`` (u64), then the data area (``size`` bytes,
  a power of two) mapped twice in a row, so a record that wraps around the end is contiguous;
  all read-only.

A record starts at ``pos & (size - 1)`` with an 8-byte header: u32 ``len`` whose top bits are
BUSY (reserved, not yet committed) and DISCARD, then a u32 the kernel uses for itself; the
record takes ``len`` + 8 bytes rounded up to 8. Records are consumed strictly in order: a BUSY
record stops the walk (its producer, on another CPU, has not committed yet), even if later ones
are committed, so nothing is reordered or skipped. ``consumer_pos`` is advanced after each
record has been handled, so the kernel never reuses bytes the handler is looking at.

Positions are read and written with single aligned 8-byte loads and stores (ctypes), which are
atomic on the 64-bit CPUs this runs on. Plain loads are ordered like acquire loads only on x86
(TSO): ``supported()`` says whether this reader may be used; elsewhere the probe falls back to
bcc's reader.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import platform
import select
import struct
from collections.abc import Callable

__all__ = ["BUSY_BIT", "DISCARD_BIT", "HDR_SIZE", "RingBuffer", "record_span", "supported"]

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HDR_SIZE = 8
_LEN_MASK = DISCARD_BIT - 1
_U32 = struct.Struct("=I")  # the header's len word, native order

# CPUs whose plain loads are not reordered with other loads (x86-TSO): reading producer_pos,
# then a record's header, then its bytes sees them in the order the kernel published them.
_TSO_MACHINES = ("x86_64", "amd64", "i686", "i386")


def supported() -> bool:
    """This reader is safe here (see the module docstring); else use bcc's callback reader."""
    return platform.machine().lower() in _TSO_MACHINES and ctypes.sizeof(ctypes.c_void_p) == 8


def record_span(length_word: int) -> int:
    """Bytes a record takes in the ring (header included, 8-byte aligned) from its len word."""
    return ((length_word & _LEN_MASK) + HDR_SIZE + 7) & ~7


class RingBuffer:
    """Consumer side of one BPF ring buffer.

    ``consume(handler)`` calls ``handler(view)`` for each committed, non-discarded record in
    order, where ``view`` is a memoryview of the record's bytes that is valid only during the
    call (copy what you keep). ``poll(handler, timeout_ms)`` also waits (epoll on the map fd)
    when nothing is there.

    A handler that has ``consume_ring(consumer, producer, data, mask, limit)`` (the native
    tracker, sidecar/capture/native.py) is given the mapping instead and walks it itself, by the
    same rules, without a Python call per record: ``consumer`` and ``producer`` are the two
    positions as 8-byte buffers, ``data`` the data area mapped twice, ``mask`` its size - 1.
    """

    def __init__(self, consumer: ctypes.c_uint64, producer: ctypes.c_uint64, data: memoryview,
                 size: int, *, fd: int | None = None, unmap: Callable[[], None] | None = None):
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size must be a power of two, got {size}")
        if len(data) < 2 * size:
            raise ValueError("the data area must be mapped twice (2 * size bytes)")
        self._cons = consumer
        self._prod = producer
        self._data = data
        self._mask = size - 1
        self.size = size
        self._unmap = unmap
        self._epoll = None
        if fd is not None:
            self._epoll = select.epoll(1)
            self._epoll.register(fd, select.EPOLLIN)

    @classmethod
    def open(cls, map_fd: int, size: int) -> RingBuffer:
        """Map the ring buffer behind ``map_fd`` (a BPF_MAP_TYPE_RINGBUF of ``size`` bytes)."""
        page = mmap.PAGESIZE
        if size % page:
            raise ValueError(f"ring buffer size {size} is not a multiple of the page size")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        failed = ctypes.c_void_p(-1).value

        def _map(length: int, prot: int, offset: int) -> int:
            addr = libc.mmap(None, length, prot, mmap.MAP_SHARED, map_fd, offset)
            if addr in (None, failed):
                err = ctypes.get_errno()
                raise OSError(err, f"mmap of the BPF ring buffer failed: {os.strerror(err)}")
            return addr

        cons_addr = _map(page, mmap.PROT_READ | mmap.PROT_WRITE, 0)
        ro_len = page + 2 * size
        try:
            prod_addr = _map(ro_len, mmap.PROT_READ, page)
        except OSError:
            libc.munmap(cons_addr, page)
            raise

        def unmap() -> None:
            libc.munmap(prod_addr, ro_len)
            libc.munmap(cons_addr, page)

        data = memoryview((ctypes.c_char * (2 * size)).from_address(prod_addr + page)).cast("B")
        return cls(ctypes.c_uint64.from_address(cons_addr),
                   ctypes.c_uint64.from_address(prod_addr), data, size, fd=map_fd, unmap=unmap)

    def pending(self) -> int:
        """Bytes produced but not consumed yet (records, headers and padding)."""
        return self._prod.value - self._cons.value

    def consume(self, handler: Callable[[memoryview], object], limit: int = 0) -> int:
        """Hand every committed record to ``handler``, oldest first; returns how many.

        Stops at a record that is still BUSY, or after ``limit`` records (0: no limit). If the
        handler raises, that record counts as consumed and the exception propagates.
        """
        native = getattr(handler, "consume_ring", None)
        if native is not None:
            return native(self._cons, self._prod, self._data, self._mask, limit)
        cons_pos = self._cons
        prod_pos = self._prod
        data = self._data
        mask = self._mask
        word = _U32.unpack_from
        cons = cons_pos.value
        n = 0
        while True:
            prod = prod_pos.value
            if cons >= prod:
                return n
            while cons < prod:
                off = cons & mask
                (length,) = word(data, off)
                if length & BUSY_BIT:
                    return n
                cons += ((length & _LEN_MASK) + HDR_SIZE + 7) & ~7
                if not length & DISCARD_BIT:
                    start = off + HDR_SIZE
                    try:
                        handler(data[start:start + (length & _LEN_MASK)])
                    finally:
                        cons_pos.value = cons
                    n += 1
                    if n == limit:
                        return n
                else:
                    cons_pos.value = cons

    def wait(self, timeout_ms: int) -> bool:
        """Sleep until the kernel says there is data (or ``timeout_ms`` passed)."""
        if self._epoll is None:
            return self.pending() > 0
        try:
            return bool(self._epoll.poll(max(timeout_ms, 0) / 1000.0))
        except InterruptedError:
            return False

    def poll(self, handler: Callable[[memoryview], object], timeout_ms: int,
             limit: int = 0) -> int:
        """Consume what is there (at most ``limit`` records, 0: all); if nothing was, wait up
        to ``timeout_ms`` and consume again, woken or not: the probe submits most records
        without waking the reader (WAKEUP_BYTES in bpf/capture.h), so the end of the wait is
        what delivers them."""
        n = self.consume(handler, limit)
        if n == 0 and timeout_ms > 0:
            self.wait(timeout_ms)
            n = self.consume(handler, limit)
        return n

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._unmap is not None:
            self._data.release()
            self._unmap()
            self._unmap = None
