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

.PHONY: install install-samseg test test-fast thesis-smoke lint format check-format typecheck bench clean-venv

install: $(VENV)/.installed

# SAMSEG (nph samseg) in its own venv: its wheel is CPython 3.11 and needs numpy < 2 (docs/samseg.md)
SAMSEG_VENV ?= .venv-samseg
SAMSEG_PYTHON ?= python3.11
install-samseg: $(SAMSEG_VENV)/.installed

$(SAMSEG_VENV)/.installed: requirements-samseg.lock
	test -x $(SAMSEG_VENV)/bin/python || $(SAMSEG_PYTHON) -m venv $(SAMSEG_VENV)
	$(SAMSEG_VENV)/bin/pip install --quiet -r requirements-samseg.lock
	touch $@

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# make test includes the thesis-size smoke (marker thesis: about 15 min and 13 GB on 2 CPU cores);
# make thesis-smoke runs it alone, test-fast leaves it out.
test: install install-samseg
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install install-samseg  ## the fast tests; SAMSEG's atlas-table test needs .venv-samseg too
	$(BIN)/python -m pytest -m "not slow and not slurm and not thesis" $(PYTEST_ARGS)

thesis-smoke: install  ## one step of each stage + a 2-step generate at experiment=thesis on the CPU (slow)
	$(BIN)/python -m pytest tests/models/test_thesis_sizes.py -m thesis $(PYTEST_ARGS)

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
# The image's torch: the lock's version from the TORCH_CUDA wheel index (cu128: driver >= 525, Volta and newer;
# cu130: driver >= 580, no Volta). containers/nph.def's base image is CUDA 12.8.
TORCH_CUDA ?= cu128
CONTAINER_TORCH_SPEC ?= $(TORCH_SPEC) --index-url https://download.pytorch.org/whl/$(TORCH_CUDA)

.PHONY: slurm-up slurm-down container status

slurm-up:  ## start a single-node SLURM (root; installs the Debian packages if missing)
	scripts/slurm_local.sh start $(SLURM_STATE)
	@echo "export SLURM_CONF=$(SLURM_STATE)/etc/slurm.conf"

slurm-down:
	scripts/slurm_local.sh stop $(SLURM_STATE)

container:  ## APPTAINER=..., APPTAINER_BUILD_FLAGS=--fakeroot, TORCH_CUDA=cu128, TORCH_SPEC=... are passed through
	TORCH_CUDA="$(TORCH_CUDA)" TORCH_SPEC="$(CONTAINER_TORCH_SPEC)" containers/build.sh $(CONTAINER) $(CONTAINER_SIF)

status: install  ## progress of what python -m launch submitted into OUT (LAUNCH_DIR, default OUT/launch)
	$(BIN)/python -m launch status launch_dir=$(LAUNCH_DIR)

# --- make demo: the main job at toy scale on this machine (no GPU, no SLURM needed) ---
# NPH phantoms → the four tiny models → synthetic pairs (python -m launch, local executor, sharded) →
# nnU-Nets trained on synthetic, SynthSeg-style randomised and "real" phantom data, all with the same budget →
# evaluated with SAMSEG (the external baseline) on held-out phantoms with enlarged ventricles → report, whose
# headline compares the LDM-trained nnU-Net with SAMSEG and with the randomised-data nnU-Net.
# Every step writes an artifact that make treats as a target, so an interrupted demo resumes where it stopped.
# DEMO_OVERRIDES go to every nph command (tests shrink it).
DEMO_DIR ?= demo
DEMO_EXPERIMENT ?= tiny
DEMO_TRAIN_CASES ?= 24
DEMO_TEST_CASES ?= 8
DEMO_SYNTHETIC ?= 24
DEMO_SHARDS ?= 2
DEMO_OVERRIDES ?=
DEMO_GENERATE_ARGS ?= steps=50
# nnU-Net label scheme of the demo: ventricles6 | ventricles1 | all33
DEMO_SCHEME ?= ventricles6
# The one training budget of every nnU-Net in the demo (equal by construction): epochs × iterations per epoch.
# Random contrasts need it: the randomised set's validation Dice stays 0 for its first 250-700 iterations, the
# phantoms' fixed contrast is learnt in tens (docs/demo.md). Base features 8 instead of nnU-Net's 32 make an
# iteration about 5× cheaper on a CPU thread, which buys those iterations.
DEMO_NNUNET_PLAN ?= base_features=8
DEMO_NNUNET_BUDGET ?= nnunet.epochs=60 nnunet.iterations=25 nnunet.val_iterations=2
# External baselines scored beside the nnU-Nets (empty: none); SAMSEG runs from .venv-samseg (make install-samseg)
DEMO_BASELINES ?= samseg
DEMO_SAMSEG_ARGS ?= preset=fast
# Steps of the demo that run at once (make -j inside `make demo`) and the threads each gets: on 2 cores two
# one-thread steps finish sooner than one two-thread step after another (tiny networks use a second thread poorly).
DEMO_JOBS ?= 2
DEMO_THREADS ?= 1
NPH := $(BIN)/nph
# Parallel steps write progress as plain lines (two tqdm bars would overwrite each other on one terminal line)
DEMO_ENV = OMP_NUM_THREADS=$(DEMO_THREADS) MKL_NUM_THREADS=$(DEMO_THREADS) $(if $(filter 1,$(DEMO_JOBS)),,NPH_PROGRESS=lines)
DNPH = $(DEMO_ENV) $(NPH)
D := $(DEMO_DIR)
DEMO_ARGS = experiment=$(DEMO_EXPERIMENT) $(DEMO_OVERRIDES)
DEMO_TRAINING_SETS := synthetic randomized real
DEMO_METHODS = $(DEMO_TRAINING_SETS) $(DEMO_BASELINES)
DEMO_ID_synthetic := 501
DEMO_ID_randomized := 502
DEMO_ID_real := 503
DEMO_PRED_MAP = {$(subst |, ,$(subst $(space),$(comma),$(foreach m,$(DEMO_METHODS),$(m):|$(D)/pred_$(m))))}

.PHONY: demo
demo: install $(if $(filter samseg,$(DEMO_BASELINES)),install-samseg)
	$(MAKE) --no-print-directory -j$(DEMO_JOBS) $(D)/benchmark/report.html
	@echo "demo report: $(abspath $(D)/benchmark/report.html)"

$(D)/real/manifest.csv: | install
	$(DNPH) phantom out=$(D)/real n=$(DEMO_TRAIN_CASES) seed=0 ventricles=[0.0,1.0] $(DEMO_ARGS)

$(D)/test/manifest.csv: | install
	$(DNPH) phantom out=$(D)/test n=$(DEMO_TEST_CASES) seed=1000 ventricles=[0.8,1.5] $(DEMO_ARGS)

$(D)/models/mask_ae/meta.json: $(D)/real/manifest.csv
	$(DNPH) train stage=mask_ae data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/mask_dm/meta.json: $(D)/models/mask_ae/meta.json
	$(DNPH) train stage=mask_dm data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/image_ae/meta.json: $(D)/real/manifest.csv
	$(DNPH) train stage=image_ae data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/models/image_dm/meta.json: $(D)/models/image_ae/meta.json
	$(DNPH) train stage=image_dm data=$(D)/real models=$(D)/models wandb.mode=offline $(DEMO_ARGS)

$(D)/synthetic/manifest.csv: $(D)/models/mask_dm/meta.json $(D)/models/image_dm/meta.json
	$(DEMO_ENV) $(BIN)/python -m launch generate cluster=local shards=$(DEMO_SHARDS) models=$(D)/models \
	  n=$(DEMO_SYNTHETIC) out=$(D)/synthetic seed=0 conditions.high=1.5 $(DEMO_GENERATE_ARGS) $(DEMO_ARGS)
	$(DNPH) generate-merge out=$(D)/synthetic $(DEMO_ARGS)

$(D)/randomized/manifest.csv: $(D)/real/manifest.csv
	$(DNPH) randomize data=$(D)/real n=$(DEMO_SYNTHETIC) out=$(D)/randomized seed=0 $(DEMO_ARGS)

$(D)/pred_samseg/labels.json: $(D)/test/manifest.csv
	$(DNPH) samseg input=$(D)/test out=$(D)/pred_samseg threads=$(DEMO_THREADS) $(DEMO_SAMSEG_ARGS) $(DEMO_ARGS)

# The nnU-Nets wait for the four models (order only): make -j would otherwise start them first and leave the
# model chain, the longest path, for last.
$(D)/pred_%/labels.json: $(D)/%/manifest.csv $(D)/test/manifest.csv \
  | $(D)/models/mask_dm/meta.json $(D)/models/image_dm/meta.json
	$(DNPH) nnunet export data=[$(D)/$*] root=$(D)/nnunet dataset=$(DEMO_ID_$*) name=$* scheme=$(DEMO_SCHEME) $(DEMO_ARGS)
	$(DNPH) nnunet plan cpus=$(DEMO_THREADS) root=$(D)/nnunet dataset=$(DEMO_ID_$*) $(DEMO_NNUNET_PLAN) $(DEMO_ARGS)
	$(DNPH) nnunet train cpus=$(DEMO_THREADS) root=$(D)/nnunet dataset=$(DEMO_ID_$*) $(DEMO_NNUNET_BUDGET) $(DEMO_ARGS)
	$(DNPH) nnunet predict cpus=$(DEMO_THREADS) root=$(D)/nnunet dataset=$(DEMO_ID_$*) input=$(D)/test out=$(D)/pred_$* $(DEMO_ARGS)

# baselines first: SAMSEG needs only the test phantoms and runs beside the model chain
$(D)/benchmark/report.html: $(foreach m,$(DEMO_BASELINES) $(DEMO_TRAINING_SETS),$(D)/pred_$(m)/labels.json)
	$(DNPH) evaluate reference=$(D)/test out=$(D)/benchmark baseline=synthetic \
	  'predictions=$(DEMO_PRED_MAP)' $(DEMO_ARGS)

# --- cluster workflow: each stage submitted through python -m launch (README "On a cluster", docs/cluster.md) ---
# Every submit-* target prints its artifact's folder, the job ids, their logs and how to follow them.
# A stage that needs the previous one waits for it in the queue (sbatch --dependency=afterok via after=).
# Variables (`make help` lists them):
## OUT: the run's folder; every folder below defaults to one inside it
## CLUSTER: cluster profile configs/cluster/$(CLUSTER).yaml (slurm: copy it for your site; loopback: slurm-up)
CLUSTER ?= slurm
## EXPERIMENT: scale of every command: thesis | tiny
EXPERIMENT ?= thesis
## CONTAINER_SIF: Apptainer image the tasks run in; used when built, CONTAINER_SIF= (empty) runs the venv
ifeq ($(origin CONTAINER_SIF),file)
RUN_SIF := $(wildcard $(CONTAINER_SIF))
else
RUN_SIF := $(CONTAINER_SIF)
endif
## DATA: labelled dataset folder the four models train on (submit-train)
DATA ?=
## MODELS: the model bundles (submit-train writes them, submit-generate reads them)
MODELS ?= $(OUT)/models
## SYNTH: the synthetic dataset submit-generate makes: N pairs from seed SEED in SHARDS array tasks
SYNTH ?= $(OUT)/synthetic
N ?= 1000
SHARDS ?= 10
SEED ?= 0
## NNUNET_DATA: dataset folder(s), space-separated, that submit-nnunet trains on (default SYNTH)
NNUNET_DATA ?= $(SYNTH)
## NNUNET_ROOT, DATASET_ID: nnU-Net's raw/preprocessed/results root and the dataset id there
NNUNET_ROOT ?= $(OUT)/nnunet
DATASET_ID ?= 501
## TEST: the real labelled test set that nnU-Net and SynthSeg segment and the benchmark scores
TEST ?=
## PREDICTIONS, SYNTHSEG_PRED, BENCHMARK: nnU-Net's and SynthSeg's prediction folders, the benchmark folder
PREDICTIONS ?= $(OUT)/pred_nnunet
SYNTHSEG_PRED ?= $(OUT)/pred_synthseg
BENCHMARK ?= $(OUT)/benchmark
## SYNTHSEG_SIF: SynthSeg's image (make container CONTAINER=synthseg); empty: mri_synthseg on the nodes' PATH
SYNTHSEG_SIF ?=
## FS_LICENSE: your FreeSurfer licence file (free registration), bound into SYNTHSEG_SIF where FreeSurfer reads it
FS_LICENSE ?=
## SAMSEG_PRED, SAMSEG_SHARDS: SAMSEG's prediction folder, and the CPU array tasks it is split into (submit-samseg)
SAMSEG_PRED ?= $(OUT)/pred_samseg
SAMSEG_SHARDS ?= 10
## SAMSEG_SIF: SAMSEG's image (make container CONTAINER=samseg); empty: the checkout's .venv-samseg (make install-samseg)
SAMSEG_SIF ?=
SAMSEG_ARGS ?=
## LAUNCH_DIR: job records and logs of every submission (make status reads it)
LAUNCH_DIR ?= $(OUT)/launch
## AFTER: job ids the first job of a submit-* target waits for, e.g. AFTER=1234,1240
AFTER ?=
## ARGS: overrides for every command (e.g. grid.shape=[..] cluster.qos=high); TRAIN_ARGS, GENERATE_ARGS,
## NNUNET_ARGS, SYNTHSEG_ARGS, BENCHMARK_ARGS: for one stage's command only (e.g. GENERATE_ARGS=steps=25)
ARGS ?=
TRAIN_ARGS ?=
GENERATE_ARGS ?=
NNUNET_ARGS ?=
SYNTHSEG_ARGS ?=
BENCHMARK_ARGS ?=

LAUNCH := $(BIN)/python -m launch
ON_CLUSTER = cluster=$(CLUSTER) launch_dir=$(LAUNCH_DIR) experiment=$(EXPERIMENT) $(ARGS)
IN_IMAGE = $(if $(RUN_SIF),container=$(RUN_SIF))
FIRST = $(if $(AFTER),after=$(AFTER))
# after= the job ids of the submission just made (local tasks have already ended: nothing to wait on)
NEXT = $(if $(filter local,$(CLUSTER)),,after=$$(cat $(LAUNCH_DIR)/last_job_ids))
NO_GPU := cluster.gpus_per_task=0
comma := ,
empty :=
space := $(empty) $(empty)
NNUNET_DATA_LIST = [$(subst $(space),$(comma),$(abspath $(NNUNET_DATA)))]
PRED_MAP = {nnunet: $(abspath $(PREDICTIONS)), synthseg: $(abspath $(SYNTHSEG_PRED))}
need = @test -n "$($(1))" || { echo "make $@: $(1)= is required: $(2)" >&2; exit 2; }
FOLLOW = @echo "follow: make status LAUNCH_DIR=$(LAUNCH_DIR)  (or $(LAUNCH) status launch_dir=$(LAUNCH_DIR))"

.PHONY: help submit-train submit-generate submit-synthseg submit-samseg submit-nnunet submit-benchmark sync-wandb

help:  ## this list: targets, then the cluster workflow's variables
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | expand -t 20
	@echo; grep -hE '^## ' $(MAKEFILE_LIST) | sed -E 's/^## /  /'

submit-train: install  ## the four training stages; mask_dm waits on mask_ae, image_dm on image_ae
	$(call need,DATA,the labelled dataset folder to train on)
	$(LAUNCH) train $(ON_CLUSTER) $(IN_IMAGE) stage=mask_ae data=$(DATA) models=$(MODELS) $(TRAIN_ARGS) $(FIRST)
	$(LAUNCH) train $(ON_CLUSTER) $(IN_IMAGE) stage=mask_dm data=$(DATA) models=$(MODELS) $(TRAIN_ARGS) $(NEXT)
	$(LAUNCH) train $(ON_CLUSTER) $(IN_IMAGE) stage=image_ae data=$(DATA) models=$(MODELS) $(TRAIN_ARGS) $(FIRST)
	$(LAUNCH) train $(ON_CLUSTER) $(IN_IMAGE) stage=image_dm data=$(DATA) models=$(MODELS) $(TRAIN_ARGS) $(NEXT)
	@echo "model bundles: $(abspath $(MODELS))/{mask_ae,mask_dm,image_ae,image_dm}/"
	@echo "W&B offline runs: $(abspath $(MODELS))/*/training/wandb/ (make sync-wandb on the login node)"
	$(FOLLOW)

submit-generate: install  ## N pairs from MODELS in SHARDS array tasks, merged by a job that waits on them
	$(LAUNCH) generate $(ON_CLUSTER) $(IN_IMAGE) models=$(MODELS) n=$(N) out=$(SYNTH) seed=$(SEED) \
	  shards=$(SHARDS) $(GENERATE_ARGS) $(FIRST)
	$(LAUNCH) generate-merge $(ON_CLUSTER) $(IN_IMAGE) out=$(SYNTH) $(NO_GPU) $(NEXT)
	@echo "synthetic dataset: $(abspath $(SYNTH)) (complete once the merge job ended)"
	@echo "shard progress: $(BIN)/nph generate-status out=$(abspath $(SYNTH))"
	$(FOLLOW)

submit-synthseg: install  ## SynthSeg on TEST (no nph image: SynthSeg runs from SYNTHSEG_SIF or PATH)
	$(call need,TEST,the test set folder to segment)
	$(if $(SYNTHSEG_SIF),$(call need,FS_LICENSE,the FreeSurfer licence file that SYNTHSEG_SIF reads))
	$(if $(SYNTHSEG_SIF),APPTAINER_BIND=$(abspath $(FS_LICENSE)):/opt/fs-license/license.txt) \
	$(LAUNCH) synthseg $(ON_CLUSTER) input=$(TEST) out=$(SYNTHSEG_PRED) \
	  $(if $(SYNTHSEG_SIF),++container=$(abspath $(SYNTHSEG_SIF))) $(SYNTHSEG_ARGS) $(NO_GPU) $(FIRST)
	@echo "SynthSeg predictions: $(abspath $(SYNTHSEG_PRED))"
	$(FOLLOW)

submit-samseg: install $(if $(SAMSEG_SIF),,install-samseg)  ## SAMSEG on TEST as a CPU array of SAMSEG_SHARDS tasks
	$(call need,TEST,the test set folder to segment)
	$(LAUNCH) samseg $(ON_CLUSTER) input=$(TEST) out=$(SAMSEG_PRED) shards=$(SAMSEG_SHARDS) $(NO_GPU) \
	  $(if $(SAMSEG_SIF),container=$(abspath $(SAMSEG_SIF))) $(SAMSEG_ARGS) $(FIRST)
	@echo "SAMSEG predictions: $(abspath $(SAMSEG_PRED)) (cost per case: samseg_cases.csv)"
	$(FOLLOW)

submit-nnunet: install  ## nnU-Net on NNUNET_DATA: export, plan, train, predict TEST, each waiting on the last
	$(call need,TEST,the test set folder nnU-Net predicts)
	$(LAUNCH) nnunet export $(ON_CLUSTER) $(IN_IMAGE) data=$(NNUNET_DATA_LIST) root=$(NNUNET_ROOT) \
	  dataset=$(DATASET_ID) $(NNUNET_ARGS) $(NO_GPU) $(FIRST)
	$(LAUNCH) nnunet plan $(ON_CLUSTER) $(IN_IMAGE) root=$(NNUNET_ROOT) dataset=$(DATASET_ID) $(NNUNET_ARGS) \
	  $(NO_GPU) $(NEXT)
	$(LAUNCH) nnunet train $(ON_CLUSTER) $(IN_IMAGE) root=$(NNUNET_ROOT) dataset=$(DATASET_ID) $(NNUNET_ARGS) $(NEXT)
	$(LAUNCH) nnunet predict $(ON_CLUSTER) $(IN_IMAGE) root=$(NNUNET_ROOT) dataset=$(DATASET_ID) input=$(TEST) \
	  out=$(PREDICTIONS) $(NNUNET_ARGS) $(NEXT)
	@echo "nnU-Net results: $(abspath $(NNUNET_ROOT))/nnUNet_results; predictions: $(abspath $(PREDICTIONS))"
	$(FOLLOW)

submit-benchmark: install  ## score PREDICTIONS and SYNTHSEG_PRED against TEST (AFTER= their job ids)
	$(call need,TEST,the reference test set)
	$(LAUNCH) evaluate $(ON_CLUSTER) $(IN_IMAGE) reference=$(TEST) 'predictions=$(PRED_MAP)' out=$(BENCHMARK) \
	  $(BENCHMARK_ARGS) $(NO_GPU) $(FIRST)
	@echo "report: $(abspath $(BENCHMARK))/report.html (summary.json, per_case.csv beside it)"
	$(FOLLOW)

WANDB_RUNS = $(wildcard $(MODELS)/*/training/wandb/offline-run-*)
sync-wandb: install  ## upload the offline W&B runs of MODELS (on the login node, which has internet)
	@test -n "$(WANDB_RUNS)" || { echo "make $@: no offline W&B runs under $(MODELS)/*/training/wandb/" >&2; exit 2; }
	$(BIN)/wandb sync $(WANDB_RUNS)
