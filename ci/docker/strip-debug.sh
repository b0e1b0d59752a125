#!/bin/sh
# Drops the debug information that some wheels leave in their extension modules (zstandard's:
# 23 of its 24 MB) from every shared object under DIR that has any. Libraries vendored by
# auditwheel (*.libs/) are left alone: they are patched with patchelf, which strip would undo.
# Used by the venv stages of ci/docker/*.Dockerfile (needs binutils).
set -eu
find "${1:?usage: strip-debug.sh DIR}" -name "*.so*" -type f ! -path "*.libs/*" | while read -r f; do
  if readelf -S "$f" 2>/dev/null | grep -q '\.debug_info'; then strip --strip-debug "$f"; fi
done
