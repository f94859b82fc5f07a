# The two commands of this project: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs what is needed on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/reproduce

.PHONY: demo test test-archs lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch resolves to a multi-GB CUDA build here.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/forgetlab reproduce --out $(OUT)

# Headless Chromium (Debian's package) renders the HTML report in a test.
CHROMIUM := $(shell command -v chromium 2>/dev/null)

chromium:
ifeq ($(CHROMIUM),)
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || echo "warning: could not install chromium; the browser test will fail in CI" >&2
endif

test: $(STAMP) chromium
	$(BIN)/lint-imports --no-cache
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest --timeout=600 --durations=15 -m "not archs" tests

# The guard on every causal-LM architecture of the installed transformers (a few minutes): its own CI step.
test-archs: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest --timeout=1800 -q -rs -m archs tests

lint: $(STAMP)
	$(BIN)/ruff check forgetlab tests benchmarks
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf $(VENV) out
