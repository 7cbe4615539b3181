# ML platform kit. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

STACK ?= local
INFRA := .venv/infra/bin
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/$(INFRA):$(PATH)
# Pulumi state stays in this checkout unless you point PULUMI_BACKEND_URL elsewhere (s3://, gs://, azblob://, Pulumi Cloud).
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
PYTEST_ARGS ?=

.PHONY: help setup test test-slow lint fmt demo bench lock validate doctor preview up destroy

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install everything tests and the demo need (pinned, cached; reruns take seconds)
	@scripts/setup.sh

# Each environment runs the tests of the code it ships (their dependencies conflict).
TEST_SUITES := infra workloads

test: setup ## run the test suite (the slow end-to-end tests excluded)
	@for suite in $(TEST_SUITES); do echo "== tests/$$suite (.venv/$$suite)"; .venv/$$suite/bin/pytest -m "not slow" tests/$$suite $(PYTEST_ARGS) || exit 1; done

test-slow: setup ## run only the slow end-to-end and load tests
	@for suite in $(TEST_SUITES); do .venv/$$suite/bin/pytest -m slow tests/$$suite $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ] || exit $$rc; done  # 5: none collected

lint: setup ## ruff lint and format check
	ruff check .
	ruff format --check .

fmt: setup ## apply ruff's fixes and formatting
	ruff check --fix .
	ruff format .

demo: setup ## run the ML loop on this machine, on its embedded defaults
	mlkit validate local

bench: setup ## measure and write benchmarks/results/*.json
	python benchmarks/run.py

lock: ## re-resolve requirements/*.in into the pinned requirements/*.lock files
	@for f in requirements/*.in; do .cache/uv/bin/uv pip compile --quiet --python-version 3.11 "$$f" -o "$${f%.in}.lock"; done

validate: setup ## validate every stack file
	mlkit validate

doctor: setup ## check the tools and credentials `pulumi up` needs for STACK
	mlkit doctor $(STACK)

# Deploys: validate offline first, then check the machine, then hand over to Pulumi.
preview: ## pulumi preview STACK (default local), after validate and doctor
up: ## pulumi up STACK, after validate and doctor
destroy: ## pulumi destroy STACK
preview up destroy: setup
	mlkit validate $(STACK)
	mlkit doctor $(STACK)
	mkdir -p .pulumi-state
	pulumi stack select --create $(STACK)
	pulumi $@ --stack $(STACK)
