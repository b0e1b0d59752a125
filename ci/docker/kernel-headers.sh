#!/bin/sh
# Debian's newest kernel headers for this architecture in one folder DIR, as bcc wants them
# (BCC_KERNEL_SOURCE=DIR): the -common and the -ARCH package merged, unpacked without
# installing them (their dependencies, gcc and kbuild, are not needed to compile BPF C), and
# only the header trees bcc's compile of a tracing program reads (include/{linux,uapi,
# asm-generic,vdso,generated,config} and arch/ARCH/include, 27 of 75 MB): no scripts, no other
# architectures, no net/, device-driver, sound or graphics headers.
# The probe reads only tracepoint arguments and user memory, never kernel struct fields, so
# headers older or newer than the running kernel do. Used by ci/docker/sidecar.Dockerfile.
set -eu
out=${1:?usage: kernel-headers.sh DIR}
arch=$(dpkg --print-architecture)
case "$arch" in amd64) karch=x86 ;; arm64) karch=arm64 ;; *) karch=$arch ;; esac
apt-get update
ver=$(apt-cache depends "linux-headers-$arch" | sed -n "s/.*Depends: linux-headers-\(.*\)-$arch\$/\1/p" | head -n 1)
[ -n "$ver" ] || { echo "kernel-headers: no linux-headers-$arch in the archive" >&2; exit 1; }
work=$(mktemp -d)
cd "$work"
apt-get download "linux-headers-$ver-common" "linux-headers-$ver-$arch"
for deb in ./*.deb; do dpkg-deb -x "$deb" "$work/root"; done
mkdir -p "$out"
cp -a "$work/root/usr/src/linux-headers-$ver-common/." "$out/"
cp -a "$work/root/usr/src/linux-headers-$ver-$arch/." "$out/"
cd "$out"
rm -rf scripts tools Module.symvers
find arch -mindepth 1 -maxdepth 1 ! -name "$karch" -exec rm -rf {} +
find "arch/$karch" -mindepth 1 -maxdepth 1 ! -name include -exec rm -rf {} +
find include -mindepth 1 -maxdepth 1 ! -name linux ! -name uapi ! -name asm-generic ! -name vdso \
     ! -name generated ! -name config -exec rm -rf {} +
for d in mfd platform_data usb mlx4 mlx5 soc mtd qed iio regulator spi ssb dma greybus mmc fsl \
         irqchip bcma surface_aggregator clk input comedi gpio can amba power soundwire phy pinctrl \
         i3c avf dsa fpga rtc rpmsg ulpi hsi mailbox remoteproc mdio mux isdn pse-pd pcs extcon \
         firmware reset; do rm -rf "include/linux/$d"; done
rm -rf include/uapi/rdma include/uapi/sound include/uapi/drm include/uapi/scsi include/uapi/misc \
       include/uapi/mtd include/uapi/xen include/uapi/video
echo "$ver" > .rewind-headers-version
rm -rf "$work" /var/lib/apt/lists/*
