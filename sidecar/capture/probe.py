"""The kernel probe: compiles bpf/capture.bpf.c with bcc, attaches it, and reads its ring
buffer. The only module that imports bcc, so everything else is testable without root."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sidecar.capture import preflight, ringbuf
from sidecar.capture.events import CHUNK_SIZE, HEADER_SIZE
from sidecar.capture.metrics import KERNEL_DROP_REASONS
from sidecar.capture.procfs import PidNamespace, ProcFS

DEFAULT_BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
SOURCE_NAME = "capture.bpf.c"
# Records handled per poll() at most, so a busy ring buffer still lets the capture loop do its
# housekeeping (about a second of work at the most this sidecar handles).
POLL_LIMIT = 50_000
# The probe wakes its reader only every WAKEUP_BYTES (bpf/capture.h) of records per CPU; below
# that, records wait until the reader looks on its own, at the latest every WAKEUP_MS: the
# bound on the delay batching adds (docs/capture.md, OVERHEAD).
WAKEUP_BYTES = 65536
WAKEUP_MS = 10
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")  # bpf_get_current_task_btf() needs it
TARGET_ANY = 0xFFFFFFFF  # bpf/capture.bpf.c: a `targets` slot two captured processes share
# libssl functions hooked with --tls: (symbol, entry program); each also gets the return
# program ``ssl_return``. The first two are required, the rest are used where the library has them.
TLS_CALLS = (
    ("SSL_read", "ssl_read_enter"),
    ("SSL_write", "ssl_write_enter"),
    ("SSL_read_ex", "ssl_read_ex_enter"),
    ("SSL_write_ex", "ssl_write_ex_enter"),
)


class ProbeError(RuntimeError):
    """The probe could not be compiled or attached; the message says what to check."""


def bpf_dir() -> Path:
    """Where capture.bpf.c lives: $REWIND_BPF_DIR, else the repository's bpf/ folder."""
    return Path(os.environ.get("REWIND_BPF_DIR") or DEFAULT_BPF_DIR)


def cflags(*, self_tgid: int, max_conns: int, ringbuf_pages: int, tls: bool = False,
           pidns: PidNamespace | None = None, wakeup_bytes: int = WAKEUP_BYTES,
           task_storage: bool | None = None, raw_exit: bool = False) -> list[str]:
    """The -D flags of the probe. ``pidns``: the sidecar's PID namespace; unless it is the
    host's, the probe names processes in it (PIDNS_DEV/PIDNS_INO, bpf/capture.h).
    ``task_storage``: per-thread state in BPF task storage (default: where the kernel has BTF;
    else LRU hashes, TASK_STORAGE in bpf/capture.h). ``raw_exit``: one raw sys_exit program for
    the read/write/sendfile/accept families (RAW_EXIT in bpf/capture.h), else a tracepoint pair
    per syscall."""
    if task_storage is None:
        task_storage = KERNEL_BTF.exists()
    if ringbuf_pages <= 0 or ringbuf_pages & (ringbuf_pages - 1):
        raise ValueError(f"ring buffer pages must be a power of two, got {ringbuf_pages}")
    flags = [
        f"-I{bpf_dir()}",
        f"-DSELF_TGID={self_tgid}",
        f"-DMAX_CONNS={max_conns}",
        f"-DRINGBUF_PAGES={ringbuf_pages}",
        f"-DCHUNK_SIZE={CHUNK_SIZE}",
        f"-DTLS={int(tls)}",
        f"-DWAKEUP_BYTES={wakeup_bytes}",
        f"-DTASK_STORAGE={int(task_storage)}",
        f"-DRAW_EXIT={int(raw_exit)}",
    ]
    if pidns is not None and not pidns.is_host:
        flags += [f"-DPIDNS_DEV={pidns.dev}", f"-DPIDNS_INO={pidns.ino}"]
    return flags


class Probe:
    """A loaded, attached capture program.

    ``handler(raw)`` gets each ring-buffer record, in order, as a bytes-like object that is only
    valid during the call (a memoryview into the ring buffer): copy what you keep. The ring
    buffer is read through its memory mapping (``sidecar.capture.ringbuf``), one Python loop per poll;
    ``REWIND_RINGBUF=bcc`` (or a CPU where that reader is not safe) uses bcc's callback reader.

    Process ids, in and out (maps, events, ``self_tgid``), are those of the sidecar's own PID
    namespace ``pidns`` (default: this process's), the ones its /proc shows.
    """

    def __init__(
        self,
        handler: Callable[[bytes], None],
        *,
        self_tgid: int | None = None,
        max_conns: int = 65536,
        ringbuf_pages: int = 16384,
        tls: bool = False,
        pidns: PidNamespace | None = None,
        task_storage: bool | None = None,
        raw_exit: bool = False,
    ) -> None:
        self._flags = cflags(
            self_tgid=os.getpid() if self_tgid is None else self_tgid,
            max_conns=max_conns,
            ringbuf_pages=ringbuf_pages,
            tls=tls,
            pidns=ProcFS().pid_namespace() if pidns is None else pidns,
            task_storage=task_storage,
            raw_exit=raw_exit,
        )
        self.raw_exit: bool | None = None  # as loaded (an older bpf/ has no raw program)
        self._handler = handler
        self._tls = tls
        self._tls_events: dict[int, set[bytes]] = {}  # pid -> bcc uprobe event names
        self._bpf = None
        self._ring: ringbuf.RingBuffer | None = None
        self.headers: tuple[str, str] | None = None  # (path, origin) bcc compiled against
        self.load_s: float | None = None  # seconds load() took (compiling, most of it)
        self._target_tgids: set[int] = set()  # processes in the `targets` filter
        self._target_slots_used: dict[int, int] = {}  # slot -> value written there
        self._seeded_tgids: set[int] = set()  # processes with seeded connections
        self._conn_tgids: set[int] = set()  # processes in `conns` at the last conn_keys()

    @property
    def source_path(self) -> Path:
        return bpf_dir() / SOURCE_NAME

    def load(self) -> None:
        """Compile and attach; raises ProbeError with a hint when the kernel says no."""
        try:
            from bcc import BPF
        except ImportError as exc:
            raise ProbeError(
                "bcc's Python bindings are not importable: install python3-bpfcc and run "
                "`make venv` (the venv links Debian's bcc package)"
            ) from exc
        if os.geteuid() != 0:
            raise ProbeError("loading the probe needs root (or CAP_BPF + CAP_PERFMON)")
        if not self.source_path.exists():
            raise ProbeError(f"BPF source not found: {self.source_path} (set REWIND_BPF_DIR)")
        env = preflight.examine()
        refused = env.refused()
        if refused:  # say what is missing now, not after a compile that bcc then blames on headers
            raise ProbeError(refused)
        self.headers = env.headers
        preflight.use_headers(env.headers)
        started = time.monotonic()
        try:
            self._bpf = BPF(src_file=str(self.source_path).encode(), cflags=self._flags)
            # the emitter is tail-called by the program that found the data: the raw sys_exit
            # tracepoint (RAW_EXIT) or the classic syscall tracepoints (an older bpf/ too)
            raw = b"raw_tracepoint__sys_exit" in self._bpf.funcs
            self.raw_exit = raw
            emit = self._bpf.load_func(b"emit_more", BPF.RAW_TRACEPOINT if raw else BPF.TRACEPOINT)
            self._bpf[b"emit_progs"][ctypes.c_int(0)] = ctypes.c_int(emit.fd)
            if self._tls:  # the emitter again, as a uprobe program, for the SSL return probe
                emit = self._bpf.load_func(b"emit_more_tls", BPF.KPROBE)
                self._bpf[b"tls_emit_progs"][ctypes.c_int(0)] = ctypes.c_int(emit.fd)
            events = self._bpf[b"events"]
            if ringbuf.supported() and os.environ.get("REWIND_RINGBUF", "mmap") != "bcc":
                self._ring = ringbuf.RingBuffer.open(events.map_fd, events.max_entries)
            else:
                events.open_ring_buffer(self._on_raw)
        except Exception as exc:  # bcc raises bare Exception for compile/attach failures
            raise ProbeError(preflight.examine().explain(str(exc))) from exc
        self.load_s = round(time.monotonic() - started, 2)
        self._listeners = self._bpf[b"listeners"]
        # an older probe (make bench-capture --baseline) has no targets filter
        self._targets = self._bpf[b"targets"] if self._bpf_has_map(b"targets") else None
        self._target_slots = self._targets.max_entries if self._targets is not None else 1
        self._conns = self._bpf[b"conns"]
        self._sf_moved = self._bpf[b"sf_moved"] if self._bpf_has_map(b"sf_moved") else None
        self._gens = self._bpf[b"gens"] if self._bpf_has_map(b"gens") else None
        self._drops = self._bpf[b"drops"]
        self._io_active = self._bpf[b"io_active"]
        self._stashed = self._bpf[b"stashed"] if self._bpf_has_map(b"stashed") else None
        self._accepting = self._bpf[b"accepting"]
        self._ssl_fds = self._bpf[b"ssl_fds"]
        self._last_read = self._bpf[b"last_read"]

    def attach_tls(self, path: str, pid: int) -> list[str]:
        """Hook the libssl at ``path`` in process ``pid`` only (the kernel then plants the
        breakpoints in that process alone: other users of the same file, a load generator or
        another replica, do not trap). Returns the functions hooked; raises ProbeError when
        SSL_read or SSL_write cannot be."""
        before = set(self._bpf.uprobe_fds)
        hooked = []
        name = path.encode()
        try:
            for sym, entry in TLS_CALLS:
                try:
                    self._bpf.attach_uprobe(name=name, sym=sym.encode(), fn_name=entry.encode(),
                                            pid=pid)
                    self._bpf.attach_uretprobe(name=name, sym=sym.encode(), fn_name=b"ssl_return",
                                               pid=pid)
                except Exception as exc:  # bcc: bare Exception when the symbol is missing
                    if sym in ("SSL_read", "SSL_write"):
                        raise ProbeError(f"cannot hook {sym} in {path}: {exc}") from exc
                    continue
                hooked.append(sym)
            try:
                self._bpf.attach_uprobe(name=name, sym=b"SSL_set_fd", fn_name=b"ssl_set_fd",
                                        pid=pid)
                hooked.append("SSL_set_fd")
            except Exception:  # noqa: BLE001 -- optional: the fd is also learnt from the syscalls
                pass
        finally:
            self._tls_events.setdefault(pid, set()).update(set(self._bpf.uprobe_fds) - before)
        return hooked

    def detach_tls(self, pid: int) -> None:
        """Remove the uprobes of a process (gone, or its library could not be fully hooked)."""
        for ev_name in self._tls_events.pop(pid, ()):
            try:
                self._bpf.detach_uprobe_event(ev_name)
            except Exception:  # noqa: BLE001 -- already gone: nothing left to remove
                pass

    def forget_processes(self, alive: Callable[[int], bool]) -> None:
        """Remove the TLS map entries of processes that are gone."""
        self._seeded_tgids = {t for t in self._seeded_tgids if alive(t)}
        for table, tgid_of in ((self._last_read, lambda k: k.value >> 32),
                               (self._ssl_fds, lambda k: k.tgid)):
            for k in list(table.keys()):
                if not alive(tgid_of(k)):
                    try:
                        del table[k]
                    except KeyError:
                        pass

    def _on_raw(self, _ctx, data, size) -> None:
        if size >= HEADER_SIZE:
            self._handler(ctypes.string_at(data, size))

    def poll(self, timeout_ms: int, look_ms: int = WAKEUP_MS) -> int | None:
        """Deliver what the ring buffer holds to the handler, waiting up to timeout_ms (at most
        ``look_ms``: records may have come without a wake-up, see WAKEUP_MS); returns how many
        records that was (None with bcc's reader, which does not say)."""
        timeout_ms = min(timeout_ms, look_ms)
        if self._ring is not None:
            return self._ring.poll(self._handler, timeout_ms, POLL_LIMIT)
        self._bpf.ring_buffer_poll(timeout_ms)
        self._bpf.ring_buffer_consume()
        return None

    # -- maps --------------------------------------------------------------------------
    def set_listeners(self, keys: Iterable[tuple[int, int]]) -> None:
        """Make the listeners map hold exactly these (tgid, fd), and the targets filter exactly
        their processes (and those of seeded connections)."""
        keys = list(keys)
        # a process that closed its listener (a worker of a reloading nginx) still finishes its
        # connections: it stays a target while the last conn_keys() saw it in `conns`
        self._set_targets({t for t, _ in keys} | self._seeded_tgids | self._conn_tgids)
        # generations of processes no longer captured
        for k in list(self._gens.keys()) if self._gens is not None else ():
            if k.value not in self._target_tgids:
                try:
                    del self._gens[k]
                except KeyError:
                    pass
        want = {_key(t, f) for t, f in keys}
        have = {k.value for k in self._listeners.keys()}
        one = ctypes.c_uint8(1)
        for k in want - have:
            self._listeners[ctypes.c_uint64(k)] = one
        for k in have - want:
            try:
                del self._listeners[ctypes.c_uint64(k)]
            except KeyError:
                pass

    def seed_conn(self, tgid: int, fd: int, start_ns: int) -> bool:
        """Start capturing an already-open connection; False when it is tracked already."""
        key = ctypes.c_uint64(_key(tgid, fd))
        if key in self._conns:
            return False
        if tgid not in self._seeded_tgids:
            self._seeded_tgids.add(tgid)
            self._set_targets(set(self._target_tgids) | {tgid})
        leaf = self._conns.Leaf()
        leaf.start_ns = start_ns
        if self._gens is not None:  # the process's current fd-table generation (capture.bpf.c)
            gen = self._gens.get(ctypes.c_uint32(tgid))
            leaf.gen = gen.value if gen is not None else 0
        self._conns[key] = leaf
        return True

    def _bpf_has_map(self, name: bytes) -> bool:
        try:
            self._bpf.get_table(name)
        except KeyError:
            return False
        return True

    def _set_targets(self, tgids: set[int]) -> None:
        """Write the `targets` filter (bpf/capture.bpf.c): slot tgid & (slots-1) holds the tgid,
        or TARGET_ANY where two processes share a slot."""
        if self._targets is None:
            return
        slots: dict[int, int] = {}
        for t in tgids:
            s = t & (self._target_slots - 1)
            slots[s] = t if s not in slots else TARGET_ANY
        old = self._target_slots_used
        for s, v in slots.items():
            if old.get(s) != v:
                self._targets[ctypes.c_int(s)] = ctypes.c_uint32(v)
        for s in old.keys() - slots.keys():
            self._targets[ctypes.c_int(s)] = ctypes.c_uint32(0)
        self._target_slots_used = slots
        self._target_tgids = set(tgids)

    def stash_read(self, tgid: int, tid: int, nr: int, fd: int, buf: int, iovcnt: int) -> None:
        """Give the probe the arguments of a read that was already blocked when capture began
        (see ProcFS.blocked_reads): its exit then emits the bytes as usual."""
        if self.raw_exit:  # the exit finds the arguments in the registers: nothing to hand over
            return
        leaf = self._io_active.Leaf()
        leaf.buf, leaf.iovcnt, leaf.fd, leaf.nr, leaf.dir = buf, iovcnt, fd, nr, 0
        self._io_active[ctypes.c_uint64((tgid << 32) | tid)] = leaf
        if self._stashed is not None:
            self._stashed[ctypes.c_int(0)] = ctypes.c_uint32(1)

    def stash_accept(self, tgid: int, tid: int, listen_fd: int, addr: int) -> None:
        """Give the probe the arguments of an accept() already blocked when capture began (see
        ProcFS.blocked_accepts): the connection it returns is then tracked as usual."""
        if self.raw_exit:
            return
        leaf = self._accepting.Leaf()
        leaf.addr, leaf.listen_fd = addr, listen_fd
        self._accepting[ctypes.c_uint64((tgid << 32) | tid)] = leaf

    def sendfile_moved(self, tgid: int, fd: int) -> int | None:
        """Bytes sendfile() calls with no offset have sent from ``fd`` of ``tgid`` so far (the
        probe's `sf_moved`), None when the probe has no count for it."""
        table = getattr(self, "_sf_moved", None)
        if table is None:
            return None
        v = table.get(ctypes.c_uint64(_key(tgid, fd)))
        return None if v is None else v.value

    def forget_conn(self, tgid: int, fd: int) -> None:
        try:
            del self._conns[ctypes.c_uint64(_key(tgid, fd))]
        except KeyError:
            pass

    def conn_keys(self) -> list[tuple[int, int]]:
        """The (tgid, fd) of every connection the probe tracks (their processes stay targets)."""
        keys = [(k.value >> 32, k.value & 0xFFFFFFFF) for k in self._conns.keys()]
        if (self._stashed is not None and self._stashed[ctypes.c_int(0)].value
                and not any(True for _ in self._io_active.keys())):  # every stashed read returned
            self._stashed[ctypes.c_int(0)] = ctypes.c_uint32(0)
        self._conn_tgids = {t for t, _ in keys}
        if not self._conn_tgids <= self._target_tgids:
            self._set_targets(self._target_tgids | self._conn_tgids)
        return keys

    def drop_counts(self) -> dict[str, int]:
        """Kernel drop counters, summed over CPUs, by reason."""
        out = {}
        for i, reason in enumerate(KERNEL_DROP_REASONS[:self._drops.max_entries]):
            out[reason] = sum(self._drops[ctypes.c_int(i)])
        return out

    def event_size(self) -> int:
        """sizeof(struct event) as compiled (for the layout test)."""
        return ctypes.sizeof(self._bpf[b"scratch"].sLeaf)

    def compiled_source(self) -> str:
        return f"/* cflags: {' '.join(self._flags)} */\n" + self.source_path.read_text()

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


def _key(tgid: int, fd: int) -> int:
    return (tgid << 32) | (fd & 0xFFFFFFFF)
