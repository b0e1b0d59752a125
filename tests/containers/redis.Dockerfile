# The chart's bundled Redis for tests/containers, which cannot pull redis:7: Debian's
# redis-server on the same Debian base as the rewind images. Like the official image, it takes
# redis-server options as arguments (the chart passes --save "" --appendonly no).
ARG DEBIAN=localhost/rewind/debian:bookworm
FROM ${DEBIAN}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]
