# One entry point for developers and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv lint format crds generate prometheus test test-unit test-integration test-e2e binaries up down validate-examples bench bench-quick

help:
	@echo "make test        lint, type checks and every test layer (what CI runs)"
	@echo "make up          build/reuse Kubernetes, start the local cluster, install CRDs and examples"
	@echo "make down        stop the local cluster"
	@echo "make crds        regenerate crds/ from the API models"
	@echo "make generate    regenerate every generated file (CRDs, chart copies and schema, alerts, dashboards, Argo CD)"
	@echo "make lint        ruff, mypy and the layering contract"
	@echo "make bench-quick a few minutes of benchmarks, figures printed (CI runs it)"
	@echo "make bench       the benchmark suite (long; figures in docs/benchmarks.md)"

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/ruff format --check operator tests e2e bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format operator tests e2e bench
	$(VENV)/bin/ruff check --fix operator tests e2e bench

crds: $(STAMP)
	$(VENV)/bin/cadre crds --output crds

# Every committed generated file, from its source (each has a drift test).
generate: crds
	$(PY) -m cadre.tools.chart
	$(PY) -m cadre.tools.argocd
	$(PY) -m cadre.tools.monitoring.alerts
	$(PY) -m cadre.tools.monitoring.dashboards

validate-examples: $(STAMP)
	$(VENV)/bin/cadre validate examples/*.yaml

test-unit: $(STAMP) prometheus
	$(VENV)/bin/pytest tests/unit

binaries:
	bash e2e/cluster/build-binaries.sh

# Debian's prometheus package: promtool tests the alert rules (unit), Prometheus scrapes the
# operator in the dashboard e2e and in `make up`. Installed when missing, as root; otherwise
# the command to run is printed.
prometheus:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's prometheus package (promtool, prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; \
	  else \
	    echo "the tests need Debian's prometheus package: sudo apt-get install prometheus" >&2; \
	    exit 1; \
	  fi; \
	fi

test-integration: $(STAMP) binaries
	$(VENV)/bin/pytest tests/integration

test-e2e: $(STAMP) binaries prometheus
	$(VENV)/bin/pytest e2e

test: lint validate-examples test-unit test-integration test-e2e

up: $(STAMP) binaries prometheus
	PYTHONPATH=e2e $(PY) -m localcluster up --with-examples --with-operator

down: $(STAMP)
	PYTHONPATH=e2e $(PY) -m localcluster down

# Figures, never assertions on wall clock (bench/README.md). bench-quick is the few-minute
# version CI runs after the tests; bench the whole suite (bench/suite.py): BENCH_RUNS runs
# of each scenario (several hours at 3), Kueue's side and Cadre's back to back, each step
# recorded in bench/results/<operator tree>/ as it ends, so that running it again resumes
# (BENCH_ONLY=s1,s3 picks scenarios); then the tables (report.md there) and the plots.
BENCH_RUNS ?= 3
BENCH_ONLY ?=
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench-quick: $(STAMP) binaries
	$(PY) bench/bench_scheduler.py --repeat 1 --sizes 1000,10000
	$(PY) bench/kueue_harness.py --config quick
	$(PY) bench/bench_kueue_scenario.py --config quick
	$(PY) bench/bench_latency.py --runs 1 --jobs 10

bench: $(BENCH_STAMP) binaries
	$(PY) bench/suite.py --runs $(BENCH_RUNS) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))
