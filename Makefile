# The two commands of this project: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs what is needed on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/reproduce

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch resolves to a multi-GB CUDA build here.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/forgetlab reproduce --out $(OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -x --timeout=600 tests

lint: $(STAMP)
	$(BIN)/ruff check forgetlab tests benchmarks

clean:
	rm -rf $(VENV) out
