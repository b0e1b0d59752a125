# rewind/sidecar: rewind-capture (eBPF sidecar) and rewind-archive, on Debian's bcc.
# Build from the repository root:  docker build -f ci/docker/sidecar.Dockerfile -t rewind/sidecar .
#
# bcc compiles bpf/capture.bpf.c at start-up against the running kernel: the host's kernel
# headers are NOT in the image, they are mounted at run time (/lib/modules and /usr/src, as the
# chart's rewind-modules and rewind-usr-src volumes do), with /sys/kernel/debug and tracefs.

# --- build the rewind wheel: gcc for its C extension (rewind-capture's hot path) ------------
FROM python:3.11.10-slim-bookworm AS wheel
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY sidecar ./sidecar
COPY replayer ./replayer
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# --- runtime: Debian bookworm, whose python3 (3.11) is the one python3-bpfcc is built for ---
FROM debian:12.8-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
      python3-bpfcc=0.26.0+ds-1 bpfcc-tools=0.26.0+ds-1 \
 && rm -rf /var/lib/apt/lists/*
# A venv that sees Debian's dist-packages (for `bcc`), with rewind and its dependencies in it.
RUN python3 -m venv --system-site-packages /opt/rewind/venv
COPY --from=wheel /dist /tmp/dist
RUN /opt/rewind/venv/bin/pip install --no-cache-dir /tmp/dist/rewind-*.whl && rm -rf /tmp/dist
# The BPF C source is not in the wheel (it is compiled at start-up): ship it and point at it.
COPY bpf /opt/rewind/bpf
ENV PATH=/opt/rewind/venv/bin:$PATH \
    REWIND_BPF_DIR=/opt/rewind/bpf \
    PYTHONUNBUFFERED=1
# Root on purpose: loading BPF programs and attaching tracepoints needs CAP_BPF + CAP_PERFMON
# (or CAP_SYS_ADMIN) and reading /sys/kernel/debug; the chart grants those capabilities to this
# container only (runAsUser: 0, not privileged unless sidecar.privileged).
# hadolint ignore=DL3002
USER 0
EXPOSE 9102
ENTRYPOINT ["rewind-capture"]
CMD ["--help"]
