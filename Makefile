# The two commands a newcomer runs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TG := $(VENV)/bin/tollgate

.PHONY: bootstrap demo test lint unit integration e2e bench clean

bootstrap:
	@./scripts/bootstrap.sh

demo: bootstrap
	@$(PY) scripts/demo.py

test: bootstrap lint
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: bootstrap
	$(VENV)/bin/ruff check switch rating cdr panel_api tollgate tests bench scripts
	$(VENV)/bin/mypy

unit: bootstrap
	$(PY) -m pytest -q tests/unit

integration: bootstrap
	$(PY) -m pytest -q tests/integration

e2e: bootstrap
	$(PY) -m pytest -q tests/e2e

bench: bootstrap
	$(PY) bench/authorize.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
