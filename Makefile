# squall: `make run` runs the golden-path suite, `make test` the gates, `make bench` the benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/squall run

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# Branch coverage of the in-process code; the floor only rises.
COV_FLOOR ?= 85

# --real-services runs the pytest plugin's high-load tests too, at a CI-sized scale.
SQUALL_TEST_SCALE ?= 0.2

test: lint typecheck
	$(BIN)/pytest --real-services --squall-scale=$(SQUALL_TEST_SCALE) --cov=squall --cov-branch --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR)

# The instruction counts (bench/instructions.py) run the clients under valgrind: a Debian
# package, installed here when missing and run as root; without it that benchmark says so.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@command -v valgrind >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind) || true
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache squall-results
