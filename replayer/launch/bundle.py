"""The report bundle: how a replay report leaves a Pod through its log.

The master Pod (``rewind-launch-master``) writes the report into a folder, then prints it to its
log as one bundle: the folder as a tar archive, zstd-compressed, base64 in 76-character lines,
between two marker lines::

    === rewind-report begin run=RUN format=tar+zstd+base64 ===
    KLUv/QBY...
    === rewind-report end run=RUN exit=1 bytes=123456 sha256=HEX ===

``rewind-launch`` reads the log through the API (``pods/log``), finds the bundle of its run,
checks its length and checksum and unpacks it into ``--report DIR``. No shared volume is needed;
the price is the size limit of a container log (the kubelet rotates at 10 MiB by default).
The end line also carries the replay's exit code, should the Pod's status be gone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

__all__ = ["Bundle", "BundleError", "begin_line", "end_line", "find_bundle", "pack", "unpack"]

BEGIN = "=== rewind-report begin run={run} format=tar+zstd+base64 ==="
END = "=== rewind-report end run={run} exit={code} bytes={size} sha256={digest} ==="
_BEGIN = re.compile(r"^=== rewind-report begin run=(\S+) format=tar\+zstd\+base64 ===$")
_END = re.compile(r"^=== rewind-report end run=(\S+) exit=(-?\d+) bytes=(\d+) sha256=([0-9a-f]{64}) ===$")
LINE = 76


class BundleError(Exception):
    """No bundle of this run in the log, or one that is cut or corrupt."""


@dataclass(frozen=True, slots=True)
class Bundle:
    run_id: str
    exit_code: int
    data: bytes  # tar + zstd


def pack(folder: str | Path) -> bytes:
    """The folder's files (not the folder itself) as a zstd-compressed tar archive."""
    raw = io.BytesIO()
    folder = Path(folder)
    with tarfile.open(fileobj=raw, mode="w") as tar:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return zstandard.ZstdCompressor(level=10).compress(raw.getvalue())


def begin_line(run_id: str) -> str:
    return BEGIN.format(run=run_id)


def end_line(run_id: str, exit_code: int, data: bytes) -> str:
    return END.format(run=run_id, code=exit_code, size=len(data),
                      digest=hashlib.sha256(data).hexdigest())


def lines(run_id: str, exit_code: int, data: bytes) -> list[str]:
    """Every line of the bundle, markers included."""
    text = base64.b64encode(data).decode()
    body = [text[i:i + LINE] for i in range(0, len(text), LINE)]
    return [begin_line(run_id), *body, end_line(run_id, exit_code, data)]


def find_bundle(log: str, run_id: str) -> Bundle:
    """The last complete bundle of ``run_id`` in a log; BundleError when none is whole."""
    found, body, inside = None, [], False
    for line in log.splitlines():
        line = line.strip()
        m = _BEGIN.match(line)
        if m:
            inside, body = m.group(1) == run_id, []
            continue
        m = _END.match(line)
        if m:
            if inside and m.group(1) == run_id:
                found = (body, int(m.group(2)), int(m.group(3)), m.group(4))
            inside = False
            continue
        if inside:
            body.append(line)
    if found is None:
        hint = " (cut: the log ends inside it)" if inside else ""
        raise BundleError(f"no complete report bundle of run {run_id} in the master's log{hint}")
    body, code, size, digest = found
    try:
        data = base64.b64decode("".join(body), validate=True)
    except ValueError as exc:
        raise BundleError(f"report bundle of run {run_id} is not base64: {exc}") from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        raise BundleError(f"report bundle of run {run_id} is damaged: {len(data)} bytes, "
                          f"{size} announced, or its sha256 differs")
    return Bundle(run_id, code, data)


def unpack(data: bytes, dest: str | Path) -> list[str]:
    """Unpack a bundle's archive into ``dest``; the names of the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(dest, members=members, filter="data")
    except (zstandard.ZstdError, tarfile.TarError) as exc:
        raise BundleError(f"report bundle does not unpack: {exc}") from None
    return sorted(m.name for m in members if m.isfile())
