# Two commands from a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAULT_HOME ?= $(CURDIR)/.vault
export VAULT_HOME

.PHONY: demo test ui serve setup benchmark clean

# The stamp is rebuilt when pyproject.toml changes, so a pulled dependency change installs itself.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/vault demo --hours 3

test: setup
	$(BIN)/python -m pytest

ui: setup
	$(BIN)/vault init-instance >/dev/null
	DAGSTER_HOME=$(VAULT_HOME)/dagster $(BIN)/dagster dev -w workspace.yaml

serve: setup
	$(BIN)/vault serve --host 127.0.0.1 --port 8080

benchmark: setup
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/verify.py

clean:
	rm -rf $(VAULT_HOME)
