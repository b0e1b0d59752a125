"""Reading a sendfile() body back from the file (ProcFS.read_sendfile), on a fixture /proc."""

from __future__ import annotations

import os

from sidecar.capture.events import Event, Kind

PART = 1000
CONTENT = b"".join(bytes([0x41 + i]) * PART for i in range(4))  # AAA..BBB..CCC..DDD..


def _proc(tmp_path, pos: int):
    """A /proc with process 7 whose fd 5 is CONTENT's file, its position at ``pos``."""
    from sidecar.capture.procfs import ProcFS

    data = tmp_path / "file.bin"
    data.write_bytes(CONTENT)
    (tmp_path / "proc" / "7" / "fd").mkdir(parents=True)
    (tmp_path / "proc" / "7" / "fdinfo").mkdir()
    os.symlink(data, tmp_path / "proc" / "7" / "fd" / "5")
    (tmp_path / "proc" / "7" / "fdinfo" / "5").write_text(f"pos:\t{pos}\nflags:\t0100000\n")
    return ProcFS(str(tmp_path / "proc"))


def _ev(aux2: int, total: int = PART) -> Event:
    return Event(0, 0, total, 5, aux2, 7, 9, 0, Kind.SENDFILE, 1, 0, 0, bytes(16), 0, b"")


def test_a_call_from_the_file_position_is_placed_by_the_running_total(tmp_path):
    """The first of four 1,000-byte calls from the file position, read back after all four
    moved the position to 4,000: its bytes are the file's first 1,000 (the A's), found from
    the running total after the call (1,000) and now (4,000), not the last 1,000."""
    procfs = _proc(tmp_path, pos=4 * PART)
    assert procfs.read_sendfile(_ev(aux2=-1 - PART), lambda tgid, fd: 4 * PART) == b"A" * PART
    assert procfs.read_sendfile(_ev(aux2=-1 - 3 * PART), lambda tgid, fd: 4 * PART) == b"C" * PART


def test_without_the_totals_the_body_is_not_guessed(tmp_path):
    """No running total from the probe (an older probe's aux2 -1, or no count now): None, so the
    record is flagged rather than given the bytes before the current position."""
    procfs = _proc(tmp_path, pos=4 * PART)
    assert procfs.read_sendfile(_ev(aux2=-1), lambda tgid, fd: 4 * PART) is None
    assert procfs.read_sendfile(_ev(aux2=-1 - PART), lambda tgid, fd: None) is None
    assert procfs.read_sendfile(_ev(aux2=-1 - PART), None) is None


def test_an_explicit_offset_is_read_as_given(tmp_path):
    """A call with an offset is read at that offset, whatever the position."""
    procfs = _proc(tmp_path, pos=0)
    assert procfs.read_sendfile(_ev(aux2=2 * PART)) == b"C" * PART
