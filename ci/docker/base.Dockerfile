# rewind/base: the one base of the rewind images: Debian bookworm and its python3 (3.11, the
# Python that Debian's bcc bindings are built for). `make images` builds it first; by hand, from
# the repository root:
#   docker build -f ci/docker/base.Dockerfile -t rewind/base:0.1.0 .
# DEBIAN is the Debian image to start from. Where none can be pulled, `make images
# DEBIAN_IMAGE=debootstrap` makes one from Debian's packages (ci/docker/debian-base.sh).
ARG DEBIAN=debian:12.8-slim
FROM ${DEBIAN}
# No version pins: Debian replaces a package version at each point release, and a pinned
# version that has left the archive fails the build. Debian's stable updates are what we want.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1
