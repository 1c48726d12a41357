# The two commands of the README:  `make demo`  and  `make test`.
# Everything else here is what those two need, from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extra pip arguments for torch, e.g. a CPU-only index on a laptop without a GPU.
TORCH_PIP_ARGS ?=
TORCH_VERSION  ?= 2.13.0

# Local copies of downloads, when this checkout sits beside the project's shared/ folder
# (CI and the development machines). Elsewhere the code downloads and caches them.
SHARED_DATA := $(wildcard ../shared/data)
ifneq ($(SHARED_DATA),)
export MINIGPT_DATA ?= $(abspath ../shared/data/tinyshakespeare.txt)
export TIKTOKEN_CACHE_DIR ?= $(abspath ../shared/data/tiktoken_cache)
endif
export NO_MKDOCS_2_WARNING := 1
export PYTHONUNBUFFERED := 1

RUN ?= runs/char-cpu
# MathJax is copied into the built site so that math renders with no network.
MATHJAX := .cache/mathjax/tex-mml-chtml.js

.PHONY: setup demo test check lint pytest book serve tangle clean figures

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, so the package's `torch>=2.2` is already met and no CUDA build is pulled in
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/python -m minigpt train --stage char --preset cpu --out $(RUN) --overwrite
	$(BIN)/python -m minigpt sample --run $(RUN) --prompt "ROMEO:" --max-new-tokens 300 --seed 1

$(MATHJAX): | setup
	$(BIN)/python scripts/fetch_mathjax.py

tangle: setup
	$(BIN)/python tangle.py

# Every check CI runs, cheapest first.
test: setup $(MATHJAX)
	$(BIN)/python tangle.py --check
	$(BIN)/ruff check .
	$(BIN)/mkdocs build --strict --site-dir site
	MINIGPT_SITE_DIR=$(abspath site) $(BIN)/python -m pytest
	# The chapters' examples again on PyTorch's plain (unvectorised) CPU kernels: what they
	# print must not depend on which float kernels the CPU gets.
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -q tests/test_book_doctests.py

# The book's figures (minigpt/figures.py), drawn into book/images/ and committed.
figures: setup
	$(BIN)/python -m minigpt.figures book/images

book: setup $(MATHJAX)
	$(BIN)/mkdocs build --strict --site-dir site

serve: setup $(MATHJAX)
	$(BIN)/mkdocs serve

clean:
	rm -rf site .pytest_cache .ruff_cache
