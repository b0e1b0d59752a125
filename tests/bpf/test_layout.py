"""The compiled probe and its Python mirror agree: the event struct field by field, and the
enums, as clang compiles bpf/capture.h with the probe's own flags."""

from __future__ import annotations

import ctypes
import re
import struct
import subprocess
import sys

import pytest

from sidecar.capture.events import _HEADER, CHUNK_SIZE, HEADER_SIZE, Direction, Event, EventHeader, Kind
from sidecar.capture.metrics import KERNEL_DROP_REASONS
from sidecar.capture.probe import Probe, bpf_dir, cflags

_SCALARS = {ctypes.c_uint64: False, ctypes.c_int64: True, ctypes.c_uint32: False,
            ctypes.c_int32: True, ctypes.c_uint16: False}


def header_enum(name: str) -> dict[str, int]:
    """The members of ``enum NAME`` in bpf/capture.h with their values (implicit ones too)."""
    text = re.sub(r"/\*.*?\*/", "", (bpf_dir() / "capture.h").read_text(), flags=re.S)
    body = re.search(r"enum\s+" + name + r"\s*\{(.*?)\}", text, re.S)
    assert body, f"no enum {name} in capture.h"
    out, value = {}, -1
    for item in filter(None, (i.strip() for i in body.group(1).split(","))):
        member, _, given = item.partition("=")
        value = int(given, 0) if given.strip() else value + 1
        out[member.strip()] = value
    return out


def compile_asserts(asserts: list[str], capfd) -> None:
    """Compile ``capture.h`` with the probe's flags and these C conditions as static asserts;
    fail with clang's message naming each one that does not hold."""
    from bcc import BPF

    src = '#include "capture.h"\n' + "".join(f'_Static_assert({c}, "{c}");\n' for c in asserts)
    try:
        BPF(text=src.encode(), cflags=cflags(self_tgid=1, max_conns=64, ringbuf_pages=16))
    except Exception:  # noqa: BLE001 -- bcc raises a bare Exception on a compile error
        errors = [line for line in capfd.readouterr().err.splitlines() if "error" in line]
        pytest.fail("capture.h and the Python mirror disagree:\n" + "\n".join(errors))


def test_event_struct_size_matches_compiled_program():
    """sizeof(struct event) as bcc compiled it equals the ctypes mirror's header plus one chunk."""
    probe = Probe(lambda raw: None, ringbuf_pages=16)
    probe.load()
    try:
        assert probe.event_size() == HEADER_SIZE + CHUNK_SIZE
    finally:
        probe.close()


def test_every_event_field_matches_the_header(capfd):
    """Each field of struct event has, as compiled, the offset, size and signedness of the
    ctypes mirror (EventHeader), and the decoder's format (events._HEADER) reads the same bytes,
    the same way, into the Event field of the same name; data follows at HEADER_SIZE."""
    codes = re.findall(r"\d*[a-zA-Z]", _HEADER.format.lstrip("<"))
    assert len(codes) == len(EventHeader._fields_) and Event._fields[-1] == "data"
    asserts = []
    for i, (name, ctype) in enumerate(EventHeader._fields_):
        field = getattr(EventHeader, name)
        decoded = (struct.calcsize("<" + "".join(codes[:i])), struct.calcsize("<" + codes[i]))
        assert decoded == (field.offset, field.size), \
            f"events._HEADER reads {name} as (offset, size) {decoded}, EventHeader has " \
            f"{(field.offset, field.size)}"
        assert Event._fields[i] == name.lstrip("_"), f"Event field {i} is {Event._fields[i]}, not {name}"
        member = f"((struct event *)0)->{name}"
        asserts += [f"__builtin_offsetof(struct event, {name}) == {field.offset}",
                    f"sizeof({member}) == {field.size}"]
        if ctype in _SCALARS:
            signed = _SCALARS[ctype]
            assert codes[i].islower() == signed, f"events._HEADER reads {name} as {codes[i]!r}"
            asserts.append(f"((__typeof__({member}))-1 < 0) == {int(signed)}")
    asserts += [f"__builtin_offsetof(struct event, data) == {HEADER_SIZE}",
                f"sizeof(((struct event *)0)->data) == {CHUNK_SIZE}",
                f"EVENT_HEADER_SIZE == {HEADER_SIZE}"]
    compile_asserts(asserts, capfd)


def test_enums_match_the_header(capfd):
    """Event kinds, directions and drop reasons: the same members with the same values in
    capture.h and in Python (KERNEL_DROP_REASONS is indexed by enum drop_reason, which the
    `drops` map is sized by: DROP_NR), as written and as compiled."""
    want = {
        "event_kind": {f"EV_{k.name}": k.value for k in Kind},
        "direction": {f"DIR_{d.name}": d.value for d in Direction},
        "drop_reason": {**{f"DROP_{r.upper()}": i for i, r in enumerate(KERNEL_DROP_REASONS)},
                        "DROP_NR": len(KERNEL_DROP_REASONS)},
    }
    for enum, members in want.items():
        assert header_enum(enum) == members, f"enum {enum}"
    compile_asserts([f"{m} == {v}" for members in want.values() for m, v in members.items()], capfd)


def test_drop_counts_reads_every_reason_of_the_compiled_program():
    """drop_counts() of a loaded probe has one counter per member of capture.h's enum
    drop_reason, by the metric's names, in index order."""
    names = [m[len("DROP_"):].lower() for m in header_enum("drop_reason") if m != "DROP_NR"]
    probe = Probe(lambda raw: None, ringbuf_pages=16)
    probe.load()
    try:
        counts = probe.drop_counts()
    finally:
        probe.close()
    assert list(counts) == names and all(isinstance(n, int) and n >= 0 for n in counts.values())


def test_print_bpf_shows_the_compiled_source_and_flags():
    """The hidden --print-bpf flag prints the C that is compiled, with its -D flags."""
    out = subprocess.run(
        [sys.executable, "-m", "sidecar.capture.cli", "--port", "8080", "--stream", "s",
         "--print-bpf"], capture_output=True, text=True, check=True).stdout
    assert "-DCHUNK_SIZE=16384" in out and "TRACEPOINT_PROBE(syscalls, sys_exit_read)" in out
