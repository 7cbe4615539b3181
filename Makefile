# ML platform kit. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

STACK ?= local
CLUSTER_STACK ?= sim
INFRA := .venv/infra/bin
export PATH := $(CURDIR)/.cache/bin:$(CURDIR)/$(INFRA):$(PATH)
# Pulumi state stays in this checkout unless you point PULUMI_BACKEND_URL elsewhere (s3://, gs://, azblob://, Pulumi Cloud).
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
PYTEST_ARGS ?=

.PHONY: help setup cluster-tools cluster cluster-down images pipeline test test-slow lint fmt scan demo bench lock validate doctor preview up destroy policy verify

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install everything tests and the demo need (pinned, cached; reruns take seconds)
	@scripts/setup.sh

cluster-tools: ## build the live cluster's control plane, kwok and (for the tests) Pulumi from Go modules (~40 min once, cached)
	@scripts/cluster-tools.sh all

cluster: setup ## start a live control plane on this machine, the node pools of CLUSTER_STACK (default sim) simulated by kwok
	@scripts/cluster-tools.sh cluster
	.venv/infra/bin/python -m mlkit_dev.simcluster up $(CLUSTER_STACK)

cluster-down: ## stop the live control plane started by `make cluster` and delete its files
	.venv/infra/bin/python -m mlkit_dev.simcluster down

# The kit's own images: each workloads/<name>/Dockerfile, tagged as the platform references them, built with
# the versions of their one source (scripts/images.py says which). DRY_RUN=1 prints the commands instead.
images: ## build the kit's images with Docker and push them to REGISTRY (KIND_CLUSTER=name loads them into kind instead)
	@[ -n "$(REGISTRY)" ] || { echo "make images: set REGISTRY, the registry in your stack's mlkit:images (e.g. REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlkit)" >&2; exit 2; }
	@$(INFRA)/python scripts/images.py --registry "$(REGISTRY)" $(if $(KIND_CLUSTER),--kind-cluster "$(KIND_CLUSTER)") $(if $(DRY_RUN),--dry-run)

# The training pipeline's KFP YAML (docs/pipeline.md): a build output, like the images it names, since it is
# compiled for one registry; the tag is the kit's (infra/versions.py), the registry the one `make images` pushed to.
PIPELINE_YAML := build/pipeline/training.yaml
pipeline: setup ## compile the training pipeline to build/pipeline/training.yaml, its images in REGISTRY (default the charts' ghcr.io/example)
	.venv/workloads/bin/python -m workloads.pipeline compile --output $(PIPELINE_YAML) \
	  --registry "$(or $(REGISTRY),ghcr.io/example)" \
	  --tag "$$(.venv/workloads/bin/python -c 'from infra.versions import KIT_IMAGE_TAG; print(KIT_IMAGE_TAG)')"

# Seldon's microservice binds 0.0.0.0: its tests run in a private network namespace (loopback only).
CONFINED := scripts/confined

# Each environment runs the tests of the code it ships (their dependencies conflict).
test: setup cluster-tools ## run the test suite (the slow end-to-end tests excluded)
	.venv/infra/bin/pytest -m "not slow" tests/infra tests/charts tests/live $(PYTEST_ARGS)
	.venv/workloads/bin/pytest -m "not slow" tests/workloads $(PYTEST_ARGS)
	$(CONFINED) .venv/serving/bin/pytest -m "not slow" tests/serving $(PYTEST_ARGS)

test-slow: setup cluster-tools ## run only the slow end-to-end and load tests
	.venv/infra/bin/pytest -m slow tests/infra tests/charts tests/live $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: none collected
	.venv/workloads/bin/pytest -m slow tests/workloads $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(CONFINED) .venv/serving/bin/pytest -m slow tests/serving $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: setup ## ruff lint and format check, pyright over infra/, helm lint of every chart
	ruff check .
	ruff format --check .
	pyright --project pyproject.toml
	@for chart in charts/*/; do \
	  values=$$chart/ci/lint-values.yaml; \
	  helm lint --strict $$chart $$( [ -f $$values ] && echo --values $$values ) || exit 1; \
	done

fmt: setup ## apply ruff's fixes and formatting
	ruff check --fix .
	ruff format .

demo: setup ## run the ML loop on this machine, on its embedded defaults
	mlkit validate local
	.venv/workloads/bin/python -m mlkit_dev.demo

# environment:benchmark pairs (benchmarks/bench_<name>.py); serving runs confined, like its tests
BENCHMARKS := infra:config infra:platform workloads:featurestore workloads:training workloads:drift

bench: setup cluster-tools ## measure and write benchmarks/results/*.json (a few minutes)
	@for pair in $(BENCHMARKS); do .venv/$${pair%%:*}/bin/python benchmarks/run.py $${pair#*:} || exit 1; done
	@$(CONFINED) .venv/serving/bin/python benchmarks/run.py serving

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

# kube-score over every kit chart, the platform's own objects and its upstream releases (docs/security.md).
scan: setup cluster-tools ## scan what the sim, aws and local stacks deploy; findings in build/scan/<stack>.txt
	.venv/infra/bin/pytest -q tests/charts/test_scan.py $(PYTEST_ARGS)

# The kit's policy pack (policy/, docs/security.md) over what STACK would create: mandatory violations fail.
policy: setup ## pulumi preview STACK with the kit's policy pack: each violation named with its resource and fix
	mlkit validate $(STACK)
	mkdir -p .pulumi-state
	pulumi stack select --create $(STACK)
	mkdir -p build/policy
	mlkit policy-config $(STACK) > build/policy/$(STACK).json
	pulumi preview --stack $(STACK) --policy-pack policy --policy-pack-config build/policy/$(STACK).json

# After `make up`: checks the deployed platform from inside a team namespace (docs/verify.md).
verify: setup ## prove a deployed STACK works (GPUs, storage and identity, reachability, pod security); --json with ARGS
	mlkit verify $(STACK) $(ARGS)
