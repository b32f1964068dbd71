# tracegrade — `make demo` and `make test` each work on a fresh machine: they create or refresh
# .venv (when pyproject.toml changes) and install everything they need first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_PROBE := import socket; socket.create_connection(("127.0.0.1", 5432), 1)
PG_DEFAULT := postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test test-embeddings lint typecheck unit venv bench docs clean browser

# The hot paths setup.py compiles with mypyc: an edit to one rebuilds them (else Python would
# keep importing the last build).
COMPILED_SOURCES := setup.py $(addprefix src/tracegrade/,sources/conventions.py sources/otlp.py \
	sources/_langfuse_map.py \
	store/_fast.py grading.py)

$(STAMP): pyproject.toml $(COMPILED_SOURCES)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tracegrade needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/tracegrade demo

lint: venv
	$(BIN)/ruff check src tests bench

typecheck: venv
	$(BIN)/mypy

# The HTML report's test opens it in Debian's headless Chromium. As root it is installed when
# missing; otherwise this says how (the test is then skipped locally, and fails in CI).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing chromium for the HTML report test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "NOTE: $(CHROMIUM) not found; the HTML report's browser test will be skipped." \
				"Install it with: sudo apt-get install -y chromium"; \
		fi; \
	fi

# The store tests also run on PostgreSQL when TRACEGRADE_TEST_POSTGRES_URL is set; when it is
# not, a server on 127.0.0.1:5432 (database `test`) is used if one answers.
unit: venv browser
	@if [ -z "$$TRACEGRADE_TEST_POSTGRES_URL" ] && $(BIN)/python -c '$(PG_PROBE)' 2>/dev/null; then \
		export TRACEGRADE_TEST_POSTGRES_URL='$(PG_DEFAULT)'; fi; \
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

# The optional sentence-transformers embedding (torch pinned to the CPU build), kept out of `test`.
test-embeddings: venv
	$(BIN)/python -m pip install --quiet -e '.[embeddings]'
	$(BIN)/pytest -q -m embeddings tests/embeddings

docs: venv
	PYTHONPATH=. $(BIN)/cog -r src/tracegrade/cli/_index.py
	PYTHONPATH=. $(BIN)/cog -r README.md

bench: venv
	$(BIN)/python bench/ingest_grade.py

clean:
	rm -rf $(VENV) .tracegrade .pytest_cache .mypy_cache .ruff_cache
