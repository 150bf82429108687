# oms-streams — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install oms-streams with its dev tools

test: $(STAMP) ## Run every test tier; starts a private Kafka broker unless OMS_KAFKA_BOOTSTRAP is set
	$(PY) -m pytest

test-unit: $(STAMP) ## Domain, adapter, contract and streaming-harness tests (no broker, no Java)
	$(PY) -m pytest tests/unit tests/contract tests/streaming

check: $(STAMP) ## ruff, mypy --strict, import-linter layering
	$(VENV)/bin/ruff check oms_streams tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

compile: $(STAMP) ## Optional: compile the ledger's hot path with mypyc (needs gcc; ~1 min; docs/compiled.md)
	OMS_COMPILED=0 $(PY) -m oms_streams.tools.compile

uncompile: ## Delete the mypyc build: back to pure Python (OMS_COMPILED=0 ignores it without deleting)
	OMS_COMPILED=0 $(PY) -m oms_streams.tools.compile --clean

generate: $(STAMP) ## Regenerate schemas/, topologies/ and the Grafana dashboards from the code
	$(PY) -m oms_streams.cli generate
	$(PY) -m oms_streams.tools.dashboards

demo: $(STAMP) ## Local broker + worker + simulated ERP/POS/supplier, live availability; Ctrl-C stops all
	bash deploy/demo/run.sh

broker-up: ## Start a local Kafka broker (OMS_KAFKA_PORT, default 9092)
	bash deploy/kafka/start.sh

broker-down: ## Stop the local Kafka broker
	bash deploy/kafka/stop.sh

bench: $(STAMP) ## Benchmarks (figures and ratios, not tests)
	$(PY) -m bench.run

bench-sourcing: $(STAMP) ## Sourcing benchmarks: decision time, plan quality vs two baselines, end to end on a broker
	$(PY) -m bench.sourcing_decision
	$(PY) -m bench.sourcing_quality
	$(PY) -m bench.sourcing_e2e --workers 2

bench-returns: $(STAMP) ## Return routing benchmark: decision time over 300 locations
	$(PY) -m bench.returns_routing

chaos: $(STAMP) ## Workers killed at every saga step and at random under load; prints the audit counts (ROUNDS=2)
	$(PY) -m bench.chaos --rounds $(or $(ROUNDS),2)

clean: ## Remove local run state (.run/); the broker must be stopped first
	rm -rf .run

.PHONY: help install test test-unit check compile uncompile generate demo broker-up broker-down bench bench-sourcing chaos clean
