# rewind/replayer: rewind-replay (entrypoint), rewind-archive and rewind-inspect, as a non-root
# user (uid 10001). Built by `make images` from the repository root, after `make wheelhouse`:
#   docker build -f ci/docker/replayer.Dockerfile --build-arg BASE=rewind/base:0.1.0 -t rewind/replayer .
# Run another tool with --entrypoint rewind-inspect (or rewind-archive). The Jobs of rewind-launch
# and charts/rewind-replay set `command:` to rewind-launch-master (the master Pod) and
# rewind-replay-worker (the worker Pods); rewind-launch itself is in the image too.
ARG BASE=rewind/base:0.1.0

# --- rewind with the replay extra, from the wheelhouse (no index) ---------------------------
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
# kubernetes 36+ ships an asyncio client (kubernetes/aio, 41 MB) beside the one rewind-launch
# uses; nothing imports it, so it goes. .pyc files for everything else the tools may import
# (they run as a user who cannot write them), but not for the libraries' test suites (17 MB).
# tests/containers imports every console script's module in the image.
RUN python3 -m venv --without-pip /opt/rewind/venv \
 && pip=$(echo /tmp/wheels/pip-*.whl) \
 && python3 "$pip/pip" --python /opt/rewind/venv/bin/python install --no-cache-dir --no-compile \
      --no-index --find-links /tmp/wheels -c /tmp/constraints.txt "rewind[replay]" \
 && sh /tmp/strip-debug.sh /opt/rewind/venv \
 && rm -rf /opt/rewind/venv/lib/python3*/site-packages/kubernetes/aio \
 && /opt/rewind/venv/bin/python -m compileall -q -j 0 -x "/tests/" /opt/rewind/venv/lib

FROM ${BASE}
RUN useradd --create-home --uid 10001 --user-group rewind
COPY --from=venv /opt/rewind/venv /opt/rewind/venv
ENV PATH=/opt/rewind/venv/bin:$PATH
USER 10001:10001
WORKDIR /home/rewind
# Reports go to --report DIR: mount a volume there (e.g. /home/rewind/out).
ENTRYPOINT ["rewind-replay"]
CMD ["--help"]
