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

# --- make demo: the main job at toy scale on this machine (no GPU, no SLURM needed) ---
# NPH phantoms → the four tiny models → synthetic pairs (python -m launch, local executor, sharded) →
# nnU-Nets trained on synthetic, SynthSeg-style randomised and "real" phantom data → evaluated on held-out
# phantoms with enlarged ventricles → report. Every step writes an artifact that make treats as a target,
# so an interrupted demo resumes where it stopped. DEMO_OVERRIDES go to every nph command (tests shrink it).
DEMO_DIR ?= demo
DEMO_EXPERIMENT ?= tiny
DEMO_TRAIN_CASES ?= 24
DEMO_TEST_CASES ?= 8
DEMO_SYNTHETIC ?= 24
DEMO_SHARDS ?= 2
DEMO_OVERRIDES ?=
NPH := $(BIN)/nph
D := $(DEMO_DIR)
DEMO_ARGS = experiment=$(DEMO_EXPERIMENT) $(DEMO_OVERRIDES)
DEMO_TRAINING_SETS := synthetic randomized real
DEMO_ID_synthetic := 501
DEMO_ID_randomized := 502
DEMO_ID_real := 503

.PHONY: demo
demo: install $(D)/benchmark/report.html
	@echo "demo report: $(abspath $(D)/benchmark/report.html)"

$(D)/real/manifest.csv: | install
	$(NPH) phantom out=$(D)/real n=$(DEMO_TRAIN_CASES) seed=0 ventricles=[0.0,1.0] $(DEMO_ARGS)

$(D)/test/manifest.csv: | install
	$(NPH) phantom out=$(D)/test n=$(DEMO_TEST_CASES) seed=1000 ventricles=[0.8,1.5] $(DEMO_ARGS)

$(D)/models/mask_ae/meta.json: $(D)/real/manifest.csv
	$(NPH) train stage=mask_ae data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/mask_dm/meta.json: $(D)/models/mask_ae/meta.json
	$(NPH) train stage=mask_dm data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/image_ae/meta.json: $(D)/real/manifest.csv
	$(NPH) train stage=image_ae data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/image_dm/meta.json: $(D)/models/image_ae/meta.json
	$(NPH) train stage=image_dm data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/synthetic/manifest.csv: $(D)/models/mask_dm/meta.json $(D)/models/image_dm/meta.json
	$(BIN)/python -m launch generate cluster=local shards=$(DEMO_SHARDS) models=$(D)/models \
	  n=$(DEMO_SYNTHETIC) out=$(D)/synthetic seed=0 conditions.high=1.5 $(DEMO_ARGS)
	$(NPH) generate-merge out=$(D)/synthetic $(DEMO_ARGS)

$(D)/randomized/manifest.csv: $(D)/real/manifest.csv
	$(NPH) randomize data=$(D)/real n=$(DEMO_SYNTHETIC) out=$(D)/randomized seed=0 $(DEMO_ARGS)

$(D)/pred_%/labels.json: $(D)/%/manifest.csv $(D)/test/manifest.csv
	$(NPH) nnunet export data=[$(D)/$*] root=$(D)/nnunet dataset=$(DEMO_ID_$*) name=$* scheme=ventricles6 $(DEMO_ARGS)
	$(NPH) nnunet plan root=$(D)/nnunet dataset=$(DEMO_ID_$*) $(DEMO_ARGS)
	$(NPH) nnunet train root=$(D)/nnunet dataset=$(DEMO_ID_$*) $(DEMO_ARGS)
	$(NPH) nnunet predict root=$(D)/nnunet dataset=$(DEMO_ID_$*) input=$(D)/test out=$(D)/pred_$* $(DEMO_ARGS)

$(D)/benchmark/report.html: $(foreach s,$(DEMO_TRAINING_SETS),$(D)/pred_$(s)/labels.json)
	$(NPH) evaluate reference=$(D)/test out=$(D)/benchmark baseline=real \
	  'predictions={synthetic: $(D)/pred_synthetic, randomized: $(D)/pred_randomized, real: $(D)/pred_real}' \
	  $(DEMO_ARGS)
