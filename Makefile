# The two commands a newcomer runs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TG := $(VENV)/bin/tollgate
PACKAGES := core rating runtime switch cdr billing abuse panel_api tollgate customers

.PHONY: bootstrap demo test lint unit integration e2e bench rig-start rig-stop rig-status clean

bootstrap:
	@./scripts/bootstrap.sh

demo: bootstrap
	@$(PY) scripts/demo.py

test: bootstrap lint
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: bootstrap
	$(VENV)/bin/ruff check $(PACKAGES) tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: bootstrap
	$(PY) -m pytest -q tests/unit

integration: bootstrap
	$(PY) -m pytest -q tests/integration

e2e: bootstrap
	$(PY) -m pytest -q tests/e2e

bench: bootstrap
	$(PY) bench/authorize.py
	$(PY) -m bench.e2e_calls --rate 50,100 --calls 1500
	$(PY) -m bench.ari_sessions
	$(PY) bench/cdr_ingest.py
	$(PY) bench/abuse_detect.py
	$(PY) bench/deck_import.py
	$(PY) bench/cli_startup.py

# The Asterisk rig by hand (ports and accounts: tests/e2e/README.md); `make test` and
# `make demo` start and stop their own.
rig-start: bootstrap
	./scripts/asterisk/rig.sh start

rig-stop:
	./scripts/asterisk/rig.sh stop

rig-status:
	./scripts/asterisk/rig.sh status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
