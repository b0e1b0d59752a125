# rewind/replayer: rewind-replay (entrypoint), rewind-archive and rewind-inspect, as a non-root
# user (uid 10001). Build from the repository root:
#   docker build -f ci/docker/replayer.Dockerfile -t rewind/replayer .
# Run another tool with --entrypoint rewind-inspect (or rewind-archive). The Jobs of rewind-launch
# and charts/rewind-replay set `command:` to rewind-launch-master (the master Pod) and
# rewind-replay-worker (the worker Pods); rewind-launch itself is in the image too.

FROM python:3.11.10-slim-bookworm AS wheel
# gcc: the package's C extension (rewind-capture's hot path) is built with it
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY sidecar ./sidecar
COPY replayer ./replayer
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11.10-slim-bookworm
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-cache-dir /tmp/dist/rewind-*.whl && rm -rf /tmp/dist \
 && useradd --create-home --uid 10001 --user-group rewind
USER 10001:10001
WORKDIR /home/rewind
ENV PYTHONUNBUFFERED=1
# Reports go to --report DIR: mount a volume there (e.g. /home/rewind/out).
ENTRYPOINT ["rewind-replay"]
CMD ["--help"]
