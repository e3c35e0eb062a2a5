# Every target creates .venv and installs what it needs; nothing has to be set up by hand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
# The CPU build of torch lies on disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
REFERENCE := grad-info-opt==0.1.2

export SPARK_LOCAL_IP ?= 127.0.0.1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: all test lint typecheck demo bench suite clean system-data

all: test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamp files so repeated runs do not reinstall; they are rebuilt when pyproject.toml changes.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[test,dev,text,spark,demo,experiments,reference,peers,frames,fast]"
	$(PIP) install --no-deps $(REFERENCE)
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[text,demo]"
	touch $@

# Fashion-MNIST comes from Debian (package dataset-fashion-mnist); install it when we can (root), else the tests
# and the experiment that need it skip with a message saying how to install it.
system-data:
	@if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST tests will skip"; \
	else echo "note: apt-get install -y dataset-fashion-mnist (as root) enables the Fashion-MNIST tests"; fi

test: $(VENV)/.test-installed system-data
	$(BIN)/ruff check src tests benchmarks examples experiments
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks examples experiments
	$(BIN)/mypy

# No special options: the defaults (automatic size, scale-free start) are the ones a user gets.
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/bbc_demo.py --out runs/demo

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/bench_vs_reference.py --case readme --case mixture64

# The benchmark suite (experiments/suite): every task x method x 3 seeds, at a fixed size and at GIO's own size,
# two worker processes (one per core). Writes experiments/results/suite_full.json and .md; the first run embeds
# the BBC corpus into the embedding cache ($$GIOSELECT_CACHE_DIR, default ~/.cache/gioselect/embeddings).
SUITE_JOBS ?= 2
suite: $(VENV)/.test-installed system-data
	$(BIN)/python experiments/suite --size full --jobs $(SUITE_JOBS)

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
