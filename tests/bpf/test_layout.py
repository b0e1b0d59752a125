"""The compiled probe and its Python mirror agree."""

from __future__ import annotations

import subprocess
import sys

from sidecar.capture.events import CHUNK_SIZE, HEADER_SIZE
from sidecar.capture.probe import Probe


def test_event_struct_size_matches_compiled_program():
    """sizeof(struct event) as bcc compiled it equals the ctypes mirror's header plus one chunk."""
    probe = Probe(lambda raw: None, ringbuf_pages=16)
    probe.load()
    try:
        assert probe.event_size() == HEADER_SIZE + CHUNK_SIZE
        assert set(probe.drop_counts()) >= {"ringbuf_full", "conn_map_full", "too_large"}
    finally:
        probe.close()


def test_print_bpf_shows_the_compiled_source_and_flags():
    """The hidden --print-bpf flag prints the C that is compiled, with its -D flags."""
    out = subprocess.run(
        [sys.executable, "-m", "sidecar.capture.cli", "--port", "8080", "--stream", "s",
         "--print-bpf"], capture_output=True, text=True, check=True).stdout
    assert "-DCHUNK_SIZE=16384" in out and "TRACEPOINT_PROBE(syscalls, sys_exit_read)" in out
