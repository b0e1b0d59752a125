# rewind/sidecar: rewind-capture (the eBPF sidecar) and rewind-archive, on Debian's bcc, with the
# kernel headers bcc compiles the probe against, so a node's own headers are optional (they are
# used when /lib/modules/$(uname -r)/build is mounted). Built by `make images` from the
# repository root, after the wheelhouse (`make wheelhouse`):
#   docker build -f ci/docker/sidecar.Dockerfile --build-arg BASE=rewind/base:0.1.0 -t rewind/sidecar .
ARG BASE=rewind/base:0.1.0

# --- rewind with its core dependencies only, from the wheelhouse (no index) -----------------
FROM ${BASE} AS venv
# binutils: for strip-debug.sh (zstandard's extension modules carry 23 MB of debug info). pip
# runs from its wheel: it is not needed in the image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
COPY ci/docker/strip-debug.sh /tmp/strip-debug.sh
COPY constraints.txt /tmp/constraints.txt
COPY build/wheelhouse /tmp/wheels
# The venv sees Debian's bcc. No .pyc files: the sidecar runs as root and writes those it
# needs at its first start (a fraction of a second next to compiling the probe).
RUN python3 -m venv --without-pip --system-site-packages /opt/rewind/venv \
 && pip=$(echo /tmp/wheels/pip-*.whl) \
 && python3 "$pip/pip" --python /opt/rewind/venv/bin/python install --no-cache-dir --no-compile \
      --no-index --find-links /tmp/wheels -c /tmp/constraints.txt rewind \
 && sh /tmp/strip-debug.sh /opt/rewind/venv

# --- Debian's kernel headers, without the compiler and kbuild they depend on ----------------
FROM ${BASE} AS headers
COPY ci/docker/kernel-headers.sh /tmp/kernel-headers.sh
RUN sh /tmp/kernel-headers.sh /opt/rewind/kernel-headers

# --- runtime ------------------------------------------------------------------------------
FROM ${BASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-bpfcc \
 && rm -rf /var/lib/apt/lists/*
COPY --from=headers /opt/rewind/kernel-headers /opt/rewind/kernel-headers
COPY --from=venv /opt/rewind/venv /opt/rewind/venv
# The BPF C source is not in the wheel (bcc compiles it at start-up): ship it and point at it.
COPY bpf /opt/rewind/bpf
ENV PATH=/opt/rewind/venv/bin:$PATH \
    REWIND_BPF_DIR=/opt/rewind/bpf \
    REWIND_KERNEL_HEADERS=/opt/rewind/kernel-headers
# Root on purpose: loading BPF programs and attaching tracepoints needs CAP_BPF + CAP_PERFMON
# (or CAP_SYS_ADMIN), which only count for root; the chart adds those capabilities to this
# container only (runAsUser: 0, not privileged unless sidecar.privileged).
# hadolint ignore=DL3002
USER 0
EXPOSE 9102
ENTRYPOINT ["rewind-capture"]
CMD ["--help"]
