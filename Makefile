# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and
# installs, on first use, the exact releases the tests ran on (constraints.txt, within
# pyproject.toml's ranges; torch/torchvision via plain pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: constraints demo test test-slow test-all lint format bench-size bench-targets bench-sentences bench-load bench-int4 bench-runtimes bench-digits-mobile bench-startup bench-contention digits gpu-check clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# After changing a range or an extra in pyproject.toml, in a venv where the tests pass:
# constraints.txt anew from what is installed (only what quantbench's requirements reach).
constraints: $(STAMP)
	$(BIN)/python tools/constraints.py

demo: $(STAMP)
	$(BIN)/quantbench run --preset quick

# The everyday suite (under ~5 minutes on a 2-core machine): everything not marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The slow tests alone: real multi-process runs, kills and resumes, a real PostgreSQL
# server, headless Chromium, training loops.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Everything (what CI runs): the everyday suite, then the slow one.
test-all: test test-slow

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# The lab's size table for all eight models (no latency): about a minute.
bench-size: $(STAMP)
	$(BIN)/quantbench run --measure size

# Issue 4's targets: every model x every recipe at the reference shape (~30 min).
bench-targets: $(STAMP)
	$(BIN)/python benchmarks/targets.py

# all-MiniLM-L6-v2 sentence embeddings through every recipe (a few minutes).
bench-sentences: $(STAMP)
	$(BIN)/python benchmarks/sentence_fidelity.py

# Load time of every recipe's shipped file in a fresh process: a small sentence model
# (MiniLM's config, random weights), median of 3 processes per file (~10 min).
bench-load: $(STAMP)
	$(BIN)/python benchmarks/load_times.py

# Issue 12's int4 target: BERT/DistilBERT sizes and MiniLM fidelity (~15 min).
bench-int4: $(STAMP)
	$(BIN)/python benchmarks/int4_target.py

# Issue 20: the eight models through ONNX Runtime, ExecuTorch (XNNPACK) and OpenVINO int8,
# each against torch fp32 and against its own runtime's fp32 (one to two hours here).
bench-runtimes: $(STAMP)
	$(BIN)/python benchmarks/deploy_runtimes.py

# MobileNetV2 / MNASNet trained on the digits: per-channel static int8 against the
# 28%-of-fp32 size target, and where the int8 files' bytes go (weights cached in
# quantbench-runs/digits-mobile; ~6 min on an idle 2-core machine, ~20 on a busy one).
bench-digits-mobile: $(STAMP)
	$(BIN)/python benchmarks/digits_mobile.py

# Start-up of every command that measures nothing (target: 2 s each), as whole processes.
bench-startup: $(STAMP)
	$(BIN)/python benchmarks/startup.py

# Issue 22: the quick preset quiet, then with a busy-loop process per core competing
# (started and stopped by the script); per model both speedups and their ratio (~5 min).
bench-contention: $(STAMP)
	$(BIN)/python benchmarks/contention.py

# A small CNN trained on scikit-learn's digits, then measured with real accuracy (~1 min).
digits: $(STAMP)
	$(BIN)/python examples/digits.py

# On a machine with a GPU: the CUDA tests, then BERT / ResNet18 fp32 vs fp16 vs bf16 vs
# torchao int8 on --device cuda (about 6 minutes).
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) quantbench-runs .pytest_cache test-artifacts
