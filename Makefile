# Monaco. `make run` starts the service on the embedded local back end; `make test` runs the tests.
# Both work on a fresh machine: they create .venv with the system's real Python (not a pyenv shim)
# and install what they need.
SYS_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The checkout's operator/ folder (the package monaco.operator) would hide the standard library's
# `operator` from a Python started here with -m or -c, which puts the current directory first on
# sys.path. Safe-path mode (Python 3.11+) leaves it off, for every Python that make starts and what
# those start in turn: pytest and the processes the tests spawn, the scripts under e2e/ and bench/.
export PYTHONSAFEPATH := 1

.PHONY: help setup run test lint unit bench generate playground browser screenshot
help:
	@echo "make run    - start Monaco on the embedded local back end (http://127.0.0.1:8080, the playground at /)"
	@echo "make test   - lint, type-check and run the unit and integration tests (tests/), the playground's in Chromium"
	@echo "make e2e    - bring up a local Kubernetes cluster (or use KUBECONFIG), install, run e2e/"
	@echo "make bench  - print the benchmark tables (bench/)"
	@echo "make generate - rewrite the files generated from core/ (CRD, manifests/languages.yaml, chart parts)"
	@echo "make playground - rebuild the playground (playground/ -> api/static/playground/; needs npm)"
	@echo "make helm   - build the pinned helm into the e2e cache (make test does, for the chart's tests)"
	@echo "also: cluster-up cluster-down e2e-cluster-test"

# Installing Monaco compiles its native binaries: gcc builds nsrun, musl-tools makes the static
# monaco-init small (without it, gcc -static: larger, same behaviour). Installed here when missing.
$(VENV)/.installed: pyproject.toml setup.py
	@{ command -v gcc && command -v musl-gcc; } >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc libc6-dev musl-tools; }
	@test -x $(PY) || $(SYS_PYTHON) -m venv $(VENV) || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && $(SYS_PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The native binaries (core/native.py) beside their sources, where the editable install finds them;
# rebuilt here whenever a C source is newer than its binary.
setup: $(VENV)/.installed
	@$(PY) -P -m monaco.core.native >/dev/null

run: setup
	$(VENV)/bin/monaco serve

# mypy reads the package through a tree of directory links shaped like the installed package
# (core/ -> monaco/core ...): the editable install's import hook is invisible to it, and from the
# checkout's root operator/ would hide the standard library's `operator` from it too. The tests,
# benchmarks and e2e code are linked beside it and checked with it (e2e/cluster/ is excluded).
TYPECHECK := build/typecheck
lint: setup
	$(VENV)/bin/ruff check .
	@mkdir -p $(TYPECHECK)/monaco
	@for d in core api operator cli; do ln -sfn ../../../$$d $(TYPECHECK)/monaco/$$d; done
	@for d in tests bench e2e; do ln -sfn ../../$$d $(TYPECHECK)/$$d; done
	cd $(TYPECHECK) && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml monaco tests bench e2e

# The playground's tests drive Debian's Chromium through its chromedriver (they fail without them): installed
# here when missing, as root.
browser:
	@{ { command -v chromium || command -v chromium-browser || command -v google-chrome; } && \
	   { command -v chromedriver || test -x "$$CHROMEWEBDRIVER/chromedriver"; }; } >/dev/null || \
	  [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; }

# HELM is set, so the chart's tests fail (rather than skip) when it is not there
unit: setup helm browser
	HELM="$(HELM)" $(VENV)/bin/pytest tests

test: lint unit

bench: setup
	$(PY) bench/run.py

# The playground (playground/: CodeMirror from npm and the page) built into api/static/playground/, which is
# committed and ships in the wheel, so that nothing else needs npm. Reproducible: npm ci installs what
# package-lock.json pins; tests/test_playground.py fails when the build is stale (playground/build-stamp.json).
playground:
	cd playground && npm ci --ignore-scripts --no-audit --no-fund && node build.mjs

# docs/playground.png, the README's picture: the screenshot the browser tests take of the page
screenshot: setup browser
	$(VENV)/bin/pytest -q tests/test_playground.py -k screenshot_for_the_readme
	@mkdir -p docs && cp build/playground/playground.png docs/playground.png

# the files generated from core/ (list: core/generate.py); tests/test_generated.py fails when one is stale
generate: setup
	$(PY) -m monaco.core.generate

# image: the container image with Docker (VERSION from pyproject.toml); image-all: plus Java, gcc and g++
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
.PHONY: image image-all
image:
	docker build --build-arg VERSION=$(VERSION) -t monaco:$(VERSION) .
image-all:
	docker build --build-arg VERSION=$(VERSION) --target all -t monaco:$(VERSION)-all .

# e2e: the local cluster (unless KUBECONFIG names one), Monaco installed by its chart, pytest e2e/
.PHONY: e2e bench-k8s
e2e: setup
	bash e2e/run.sh

# the Kubernetes benchmarks: the local cluster (unless KUBECONFIG), a release installed by the chart
bench-k8s: setup
	bash e2e/bench.sh

# ---- local e2e cluster (e2e/cluster/, owner: cluster harness) --------------------------
# cluster-up: a real single-node Kubernetes inside netns monaco-e2e (builds are cached under
#   $${MONACO_E2E_CACHE:-/var/cache/monaco-e2e}; state under $${MONACO_E2E_STATE:-/var/lib/monaco-e2e})
# cluster-down: removes every process, mount, netns, iptables rule and cgroup it created
# e2e-cluster-test: the tests proving the cluster is real, run inside the netns
E2E_PYTHON ?= .venv/bin/python
.PHONY: cluster-up cluster-down e2e-cluster-test e2e-venv
cluster-up:
	bash e2e/cluster/up.sh
cluster-down:
	bash e2e/cluster/down.sh
e2e-venv:
	@test -x $(E2E_PYTHON) || { /usr/bin/python3 -m venv .venv && .venv/bin/pip install -q pytest; }
	@$(E2E_PYTHON) -c 'import pytest' 2>/dev/null || $(E2E_PYTHON) -m pip install -q pytest
e2e-cluster-test: e2e-venv
	bash e2e/cluster/run-in-cluster.sh $(E2E_PYTHON) -m pytest -v e2e/test_cluster.py
# ---- end of local e2e cluster block ------------------------------------------------------

# ---- Helm chart (helm/monaco/, owner: chart) ---------------------------------------------
# helm: the e2e harness's helm (the version pinned in e2e/cluster/versions.env), built once into its
#   cache by `e2e/cluster/build.sh helm`; HELM=/path/to/helm uses another one
# helm-lint: helm lint --strict and helm template for the default, all-on and local value sets
# helm-test: the chart's tests
HELM ?= $(or $(MONACO_E2E_CACHE),/var/cache/monaco-e2e)/helm-$(shell sed -n 's/^HELM_VERSION=//p' e2e/cluster/versions.env)/bin/helm
.PHONY: helm helm-lint helm-test
helm:
	@test -x "$(HELM)" || bash e2e/cluster/build.sh helm
	@test -x "$(HELM)" || { echo "no helm at $(HELM): set HELM=/path/to/helm" >&2; exit 1; }
helm-lint: helm
	@for f in "" helm/values-all-on.yaml helm/values-local.yaml; do \
	  $(HELM) lint --strict helm/monaco $${f:+-f $$f} && \
	  $(HELM) template monaco helm/monaco -n monaco $${f:+-f $$f} >/dev/null && echo "helm template ok: $${f:-defaults}" || exit 1; \
	done
helm-test: setup helm
	HELM="$(HELM)" $(PY) -m pytest -q tests/test_helm_chart.py
# ---- end of Helm chart block -------------------------------------------------------------
