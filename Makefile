# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export FLIGHTDECK_HOME ?= $(CURDIR)/.flightdeck
PYTEST_ARGS ?=
# Test files run on this many workers (pytest-xdist, one file per worker at a time, so module fixtures
# stay shared): most of the suite waits on servers and subprocesses, so 2 workers fit 2 cores. The 15
# slowest tests are listed at the end, to see where the suite's time goes.
TEST_WORKERS ?= 2

.PHONY: help bootstrap demo test lint bench lock clean airflow backtest gpu-check gpu-check-prepare

help:
	@echo "make demo   - run the lifecycle on the local profile (bootstraps .venv first)"
	@echo "make test   - run the test suite (bootstraps .venv and Debian packages first)"
	@echo "make bench  - benchmarks, written to bench-results/"
	@echo "make backtest - replay Feb 1 - Dec 30 2013 under static, 30-day, 7-day and value-trigger retraining (resumable; tables to docs/backtest/)"
	@echo "make lint   - ruff over the code"
	@echo "make lock   - re-resolve requirements/*.lock from requirements/*.in"
	@echo "make airflow - the Airflow UI (airflow standalone) with the flightdeck DAGs; prints URL and login"
	@echo "make gpu-check - CUDA training, GPU scoring and Triton on KIND_GPU vs CPU (a CPU dry run without CUDA)"

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m components.ops.demo

test: bootstrap
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc = 5 ]; then echo 'make test: pytest collected no tests' >&2; exit 1; fi; exit $$rc

lint: bootstrap
	$(VENV)/bin/ruff check components dags plugins pipelines feature_repo tests

bench: bootstrap
	$(PY) -m benchmarks

# Ends on Dec 30 like the measured run in the README (Dec 31 has no weather: the backtest would replay it without).
# Resumable: run it again after an interruption and it continues from the last finished day.
# Aug-Dec are the held-out months (the trigger was calibrated on Feb-Jul: docs/BACKTEST.md).
BACKTEST_ARGS ?= --start 2013-02-01 --end 2013-12-30 --policies static,scheduled:30,scheduled:7,trigger \
	--held-out-from 2013-08-01 --export docs/backtest
backtest: bootstrap
	$(PY) -m components.ops.cli backtest $(BACKTEST_ARGS)

airflow: bootstrap
	@scripts/airflow_standalone.sh

# The GPU check (components/ops/gpu_check.py, README "GPU check"). The prepare step builds .gpu-check/carry/:
# the full-year training set through the project's stages, the nvidia-pytriton wheel, a libpython fallback; that
# folder is what travels to a GPU machine, where scripts/gpu_check_device.sh runs the same check.
GPU_CHECK_SET := .gpu-check/carry/2013-01-01_2013-12-30.parquet
gpu-check-prepare: bootstrap
	@scripts/gpu_check_prepare.sh

gpu-check: gpu-check-prepare
	$(PY) -m components.ops.gpu_check --device auto --training-set $(GPU_CHECK_SET) --out .gpu-check/gpu_check.json

lock: bootstrap
	$(VENV)/bin/uv pip compile requirements/dev.in --python-version 3.11 $(foreach d,$(PIP_FIND_LINKS),--find-links $(d)) --no-emit-find-links -o requirements/dev.lock
	$(VENV)/bin/uv pip compile requirements/tools.in --python-version 3.11 -o requirements/tools.lock

clean:
	rm -rf $(FLIGHTDECK_HOME) test-artifacts bench-results

# ---- containers and infrastructure (containers/, infra/; README "Containers and infrastructure") ----
.PHONY: images pin-base-images container-locks lint-containers infra-validate
TF_ENVS := dev prod

# `make images PUSH=1` also pushes them and records their digests in containers/image-digests.json
# (containers/build_images.py --push); a make variable, since `make images --push` is not make syntax.
PUSH ?=
images:  ## build + tag every image of containers/images.yaml; fails clearly without a Docker engine
	$(PY) containers/build_images.py$(if $(filter 1 true yes,$(PUSH)), --push)

pin-base-images:  ## compare the base digests in containers/images.yaml with the registries (needs Docker)
	$(PY) containers/build_images.py --check-bases

container-locks:  ## re-resolve containers/locks/*.lock (CPU torch, CUDA torch, Triton's Python 3.12)
	containers/lock.sh

lint-containers:
	$(VENV)/bin/hadolint --config .hadolint.yaml containers/*.Dockerfile

# Needs provider downloads (registry.terraform.io), which this project's dev machines do not have.
# Providers go to a throw-away TF_DATA_DIR; a successful init writes .terraform.lock.hcl (commit it).
infra-validate:
	@for env in $(TF_ENVS); do \
	  dir=infra/terraform/environments/$$env; data=$$(mktemp -d); \
	  echo "== $$dir"; \
	  if ! TF_DATA_DIR=$$data terraform -chdir=$$dir init -backend=false -input=false -no-color > $$data/init.log 2>&1; then \
	    tail -5 $$data/init.log >&2; \
	    echo "make infra-validate: terraform init could not install the providers for $$dir (is registry.terraform.io reachable?)." \
	      "It needs the network; offline, tests/infra runs terraform fmt, checkov and the python-hcl2 checks instead." >&2; \
	    rm -rf $$data; exit 1; \
	  fi; \
	  TF_DATA_DIR=$$data terraform -chdir=$$dir validate -no-color; rc=$$?; rm -rf $$data; [ $$rc = 0 ] || exit $$rc; \
	done
