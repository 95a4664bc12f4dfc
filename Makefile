# fleetscale developer entry points. `make test` builds everything it needs from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS_DIR := .tools
UV := $(TOOLS_DIR)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: help venv lint fmt typecheck imports crds crd-check unit property-deep test test-fast e2e demo bench \
	sweep bench-operator clean system-deps binaries helm-binary

help: ## Show the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS_DIR)
	$(TOOLS_DIR)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	touch $@

venv: $(VENV)/.synced ## Create the virtual environment from the lock file

lint: venv ## ruff lint and format check
	$(VENV)/bin/ruff check operator tests e2e
	$(VENV)/bin/ruff format --check operator tests e2e

fmt: venv ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix operator tests e2e
	$(VENV)/bin/ruff format operator tests e2e

typecheck: venv ## mypy --strict on the package
	$(VENV)/bin/mypy

imports: venv ## import-linter contracts (pure planner, independent adapters)
	$(VENV)/bin/lint-imports

crds: venv ## Regenerate crds/ and the chart's copy from the models
	$(PY) -m fleetscale crd --write crds
	$(PY) -m fleetscale crd --write charts/fleetscale/crds

crd-check: venv ## Fail when crds/ differs from the models
	$(PY) -m fleetscale crd --check crds
	$(PY) -m fleetscale crd --check charts/fleetscale/crds

# Debian packages the suites use: Prometheus (the e2e suite starts its own) and promtool;
# mmdebstrap, buildah, podman and runc for the operator image (e2e/image-local.sh).
system-deps: ## Install the Debian packages the suites use (prometheus, buildah, podman, ...) when missing
	e2e/install-deps.sh

binaries: ## Build (or reuse) kube-apiserver & co., etcd, kwok, helm and Envoy Gateway from their Go modules; fetch the gateway CRDs
	e2e/build-binaries.sh

helm-binary: ## Build (or reuse) helm alone: the chart tests need it
	e2e/build-binaries.sh helm

unit: venv system-deps helm-binary ## Unit and integration tests (no cluster)
	$(VENV)/bin/pytest tests

property-deep: venv ## The planner's property tests with 3,000 examples each (minutes)
	FLEETSCALE_HYPOTHESIS_PROFILE=deep $(VENV)/bin/pytest --timeout 1800 tests/planner

test-fast: lint typecheck imports crd-check unit ## Everything but the real-cluster suite

# The suite's operator runs from the image built here (FLEETSCALE_E2E_OPERATOR=image); e2e/run.sh
# builds it first (cached) and the suite checks it (e2e/test_e2e_local_image*.py).
E2E_OPERATOR ?= image
e2e: venv system-deps binaries ## Real-cluster suite: builds the image, starts a local control plane, runs e2e/ with the operator from the image, stops it
	FLEETSCALE_E2E_OPERATOR=$(E2E_OPERATOR) PYTHON=$(CURDIR)/$(PY) e2e/run.sh -p no:cacheprovider

demo: venv system-deps binaries ## A flash crowd on a local cluster, live in the terminal (a few minutes)
	PYTHON=$(CURDIR)/$(PY) $(PY) e2e/demo.py $(DEMO_ARGS)

test: binaries test-fast e2e ## The full suite, as CI runs it

clean: ## Remove the virtual environments and caches
	rm -rf $(VENV) $(TOOLS_DIR) .mypy_cache .pytest_cache .ruff_cache

# Helm chart and container image. helm comes from e2e/build-binaries.sh (or FLEETSCALE_HELM).
HELM ?= $(or $(FLEETSCALE_HELM),$(shell bash e2e/build-binaries.sh --print 2>/dev/null | sed -n 's/^HELM_BIN_DIR=//p')/helm)
IMAGE ?= fleetscale:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
.PHONY: chart-lint hadolint image image-local

chart-lint: venv ## helm lint --strict, render and validate the chart (tests/chart)
	FLEETSCALE_HELM=$(HELM) $(VENV)/bin/pytest tests/chart

hadolint: venv ## Lint the Dockerfile
	$(VENV)/bin/hadolint Dockerfile

image: ## Build the operator image (needs docker or podman; set DOCKER=podman)
	$(or $(DOCKER),docker) build -t $(IMAGE) .

image-local: venv system-deps helm-binary ## Build the image without Docker or a registry (mmdebstrap + buildah, cached) and check it (podman)
	image_env="$$(e2e/image-local.sh env)" && eval "$$image_env" && FLEETSCALE_E2E_HELM=$(HELM) \
	  $(VENV)/bin/pytest e2e/test_e2e_local_image.py -p no:cacheprovider

bench: venv ## Simulated benchmark: every policy on the standard scenarios; refreshes README results
	$(PY) -m fleetscale simulate --bench --readme README.md --docs-dir docs --out out/bench

sweep: venv ## Robustness sweep: every standard scenario x seeds x loads x model profiles (long); refreshes docs/benchmark-sweep.md
	$(PY) -m fleetscale simulate --sweep --sweep-jobs $${FLEETSCALE_SWEEP_JOBS:-2} --docs-dir docs --out out/sweep

bench-operator: venv ## Operator overhead: 1,000, 5,000 and 10,000 InferencePools on one replica and on two shards, on the e2e control plane; refreshes README results (FLEETSCALE_BENCH_POOLS=..., FLEETSCALE_BENCH_REPLICAS=...; FLEETSCALE_BENCH_BACKEND=kmock for the emulator)
	if [ "$${FLEETSCALE_BENCH_BACKEND:-cluster}" = kmock ]; then \
	  $(VENV)/bin/pytest tests/sim/operator_bench.py -s -q -p no:cacheprovider -o log_cli=false; \
	else PYTHON=$(VENV)/bin/python FLEETSCALE_BENCH_README=README.md $(VENV)/bin/python e2e/operator_bench.py; fi
