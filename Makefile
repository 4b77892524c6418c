# nph — everything a user types. `make demo` and `make test` do their own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build to install. Here: the CUDA 13 wheels that lie on disk (they run on a CPU too).
# On a cluster, point it at the build that matches the driver, e.g.
#   make install TORCH_SPEC="torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install test test-fast lint format check-format typecheck bench clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check nph launch tests benchmarks

format: install
	$(BIN)/ruff format nph launch tests benchmarks

check-format: install
	$(BIN)/ruff format --check nph launch tests benchmarks

typecheck: install
	$(BIN)/mypy nph launch

bench: install
	$(BIN)/python -m pytest benchmarks --benchmark-only -p no:cacheprovider

clean-venv:
	rm -rf $(VENV)

# --- cluster: a loopback SLURM for tests and demos, the image, progress (docs/cluster.md) ---
SLURM_STATE ?= /tmp/nph-slurm
CONTAINER ?= nph
CONTAINER_SIF ?= containers/$(CONTAINER).sif
OUT ?= outputs
# The image's torch: the lock's version, CUDA 13.0 wheels like its base image (containers/nph.def).
CONTAINER_TORCH_SPEC ?= $(TORCH_SPEC) --index-url https://download.pytorch.org/whl/cu130

.PHONY: slurm-up slurm-down container status

slurm-up:  ## start a single-node SLURM (root; installs the Debian packages if missing)
	scripts/slurm_local.sh start $(SLURM_STATE)
	@echo "export SLURM_CONF=$(SLURM_STATE)/etc/slurm.conf"

slurm-down:
	scripts/slurm_local.sh stop $(SLURM_STATE)

container:  ## APPTAINER=..., APPTAINER_BUILD_FLAGS=--fakeroot, TORCH_SPEC=... are passed through
	TORCH_SPEC="$(CONTAINER_TORCH_SPEC)" containers/build.sh $(CONTAINER) $(CONTAINER_SIF)

status: install  ## progress of what python -m launch submitted into OUT
	$(BIN)/python -m launch status out=$(OUT)
