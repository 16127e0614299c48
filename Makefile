# One command to run the broker, one to run every test. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/fhirmwl: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/fhirmwl

run: $(BIN)/fhirmwl
	$(BIN)/fhirmwl serve --demo

test: $(BIN)/fhirmwl
	bash scripts/install-test-deps.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/pytest

lint: $(BIN)/fhirmwl
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(BIN)/fhirmwl
	$(BIN)/python bench/fhir_api.py --n 10000

clean:
	rm -rf $(VENV) data .pytest_cache
