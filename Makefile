# effbench: `make bench` runs the machine's default grid and builds the site; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= results/effbench.duckdb
SITE ?= site
# The CPU build of torch: on this project's machines `pip install torch==2.13.0` takes a local CPU
# wheel. Elsewhere, point pip at PyTorch's CPU index: make bench TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
# Without a GPU the default is the smoke grid (every method once; about 1.5 minutes on 2 cores). GRID=cpu is
# the full CPU grid (about 17 hours on 2 cores: `effbench run --grid cpu --dry-run` says what and how long).
GRID ?= $(if $(HAS_GPU),gpu,smoke)
# Extra flags for `effbench run`, e.g. ARGS=--resume after an interruption, ARGS="--family loss".
ARGS ?=

.PHONY: bench test lint install asv-smoke site kernels help

help:
	@echo "make bench [GRID=smoke|cpu|gpu|gpu-smoke] [ARGS=...] install into $(VENV), run the grid (default: $(GRID)),"
	@echo "                                  write $(DB), build $(SITE)/; ARGS go to effbench run (e.g. --resume)"
	@echo "make test                         install into $(VENV) and run the tests"
	@echo "make lint                         ruff over the code"
	@echo "make asv-smoke                    asv run of the smoke grid, then effbench ingest results/asv"
	@echo "make kernels                     compile every Triton kernel for sm_80 and sm_90 (no GPU needed),"
	@echo "                                  report registers, spills, shared memory; store them in $(DB)"

install: $(VENV)/.installed

# On a GPU machine the venv sees the system's CUDA torch and triton; otherwise torch's CPU build goes
# in first, so that the project's `torch` requirement never pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(if $(HAS_GPU),--system-site-packages) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/python -m pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[test,triton,peers,ray]"
	touch $@

bench: install
	$(BIN)/effbench run --grid $(GRID) --db $(DB) $(ARGS)
	$(BIN)/effbench site --db $(DB) --out $(SITE)
	@echo "results: $(DB) (this machine's shards in $(dir $(DB))local/runs/)   site: $(SITE)/index.html"
	@if [ "$(GRID)" = smoke ]; then \
		echo "smoke checks that every method runs; its times are not for comparison. For timings:"; \
		echo "  make bench GRID=cpu    # $$($(BIN)/effbench run --grid cpu --dry-run --db $(DB) | tail -n 1)"; \
		echo "  effbench ingest results/runs --db $(DB)   # the committed cpu results, then make site"; \
	fi

site: install
	$(BIN)/effbench site --db $(DB) --out $(SITE)

test: install
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# Every Triton kernel at every gpu-grid configuration, compiled for sm_80 and sm_90 with Triton's own compiler
# and ptxas (no GPU needed): about 75 s on 2 cores. Exit 1 on a compile error or a shared-memory overflow.
kernels: install
	$(BIN)/effbench kernels --arch sm_80,sm_90 --db $(DB)

lint: install
	$(BIN)/ruff check effbench tests benchmarks examples scripts

asv-smoke: install
	$(BIN)/asv machine --yes
	EFFBENCH_GRID=smoke $(BIN)/asv run --python=same --quick --set-commit-hash $$(git rev-parse HEAD)
	$(BIN)/effbench ingest results/asv --db $(DB)
