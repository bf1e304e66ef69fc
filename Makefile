# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run` needs only the runtime dependencies: a fresh start skips the dev tools.
STAMP_RUN := $(VENV)/.installed-run

.PHONY: run test check lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP) $(STAMP_RUN)

$(STAMP_RUN): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(STAMP_RUN)

install: $(STAMP)

run: $(STAMP_RUN)
	$(BIN)/suishen serve --seed-demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The developer loop: lint, then every test (both backends when TEST_DATABASE_URL and
# TEST_REDIS_URL are set). `make test` is the same, and the command the README and CI use.
check: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: check

# wrk drives the servers (a Python load generator saturates first on two cores).
bench: $(STAMP_RUN)
	@command -v wrk >/dev/null || apt-get install -y wrk || \
		(apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
