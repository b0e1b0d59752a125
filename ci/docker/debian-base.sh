#!/usr/bin/env bash
# The offline path to a Debian base image, for machines that cannot pull one: debootstrap a
# minimal Debian bookworm from the Debian mirror this machine's apt uses, trim it like the
# official -slim images (no docs, man pages or locales, no apt lists), and import it.
#   ci/docker/debian-base.sh IMAGE_REF          (DOCKER=podman|docker, DEBIAN_MIRROR=URL)
# `make images BASE=debootstrap` calls it; the result is what debian:12-slim would be.
set -euo pipefail

ref=${1:?usage: debian-base.sh IMAGE_REF}
docker=${DOCKER:-docker}
suite=bookworm

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then  # the first .../debian URI apt is configured with, else Debian's CDN
  mirror=$(grep -rhoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
             2>/dev/null | head -n 1 | tr -d ' ' || true)
  mirror=${mirror%/}
  mirror=${mirror:-http://deb.debian.org/debian}
fi

dir=$(mktemp -d /tmp/rewind-debian-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "debian-base: debootstrap $suite from $mirror"
debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 || {
  tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; exit 1; }
rm -f "$dir.log"

cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF
# what the -slim images leave out, also for every package installed later
cat >"$dir/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
find "$dir/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$dir"/usr/share/{man,info,locale,lintian}/* "$dir"/var/lib/apt/lists/* \
       "$dir"/var/cache/apt/* "$dir"/var/log/* "$dir"/tmp/*
tar --numeric-owner -C "$dir" -c . | "$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]' - "$ref" >/dev/null
echo "debian-base: $ref"
