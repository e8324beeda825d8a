# Two entry points (README "Quick start"): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## make run: install, then hunt the bundled demo data with every shipped rule
run: $(STAMP)
	$(BIN)/exhunt detect demo/

## make test: install, lint, type-check, run the whole test suite (rule tests included)
test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -n auto

bench: $(STAMP)
	$(BIN)/python bench/bench_detect.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
