#!/usr/bin/env bash
# Makes a fresh Debian 12 machine able to run rewind's capture and tests:
# system packages, the kernel-header links bcc needs, and the tracefs/debugfs mounts.
# Containers (make images, tests/containers): podman with runc, buildah, debootstrap for the
# offline Debian base, Debian's python3-venv for the images' wheelhouse; podman's settings for
# this VM kind are in ci/podman/containers.conf (passed with CONTAINERS_CONF, /etc untouched).
# Idempotent; run as root. Called by `make host`.
set -euo pipefail

# gcc and python3-dev: `make venv` builds rewind-capture's C extension (sidecar/capture/native)
PACKAGES=(bpfcc-tools python3-bpfcc linux-headers-amd64 redis-server nginx wrk prometheus
          curl zstd jq procps iproute2 podman buildah debootstrap runc python3-venv
          gcc python3-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-host: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bcc looks for the kernel's build tree under /lib/modules/$(uname -r); this kernel ships none,
# so point it at Debian's newest headers (older than the kernel: the probe reads only
# tracepoint arguments and user memory, never kernel struct fields by offset).
rel=$(uname -r)
hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
common=${hdr%-amd64}-common
if [ -z "$hdr" ] || [ ! -d "$common" ]; then
  echo "setup-host: no Debian kernel headers under /usr/src (linux-headers-amd64 failed?)" >&2
  exit 1
fi
mkdir -p "/lib/modules/$rel"
ln -sfn "$hdr" "/lib/modules/$rel/build"
ln -sfn "$common" "/lib/modules/$rel/source"

mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
if [ ! -d /sys/kernel/tracing/events/syscalls ] && [ ! -d /sys/kernel/debug/tracing/events/syscalls ]; then
  echo "setup-host: syscall tracepoints not visible (tracefs not mounted?)" >&2
  exit 1
fi
echo "setup-host: ok (kernel $rel, headers $(basename "$hdr"))"
