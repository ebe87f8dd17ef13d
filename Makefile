# The two set-up commands of the README: `make serve` and `make test`.
# Both create .venv and install pinned versions (constraints.txt) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup serve index test lint bench clean

$(BIN)/rag: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,local-llm,scale]"
	touch $(BIN)/rag

setup: $(BIN)/rag
	@# The browser tests (tests/test_web*.py) drive Debian's chromium; Playwright never downloads one.
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "could not install chromium (not root?): the browser tests (tests/test_web*.py) will fail until it is" >&2

serve: setup
	$(BIN)/rag index
	$(BIN)/rag serve

index: setup
	$(BIN)/rag index

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/index_build.py
	$(BIN)/python bench/query_latency.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/squad_eval.py

clean:
	rm -rf $(VENV) index/current index/versions index/.lock
