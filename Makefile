# Two commands from a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAULT_HOME ?= $(CURDIR)/.vault
export VAULT_HOME

.PHONY: demo test ui serve setup system benchmark clean

# The stamp is rebuilt when pyproject.toml changes, so a pulled dependency change installs itself.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# System packages the test suite needs: a real browser for page tests (Debian's chromium;
# `playwright install` cannot download one here), curl + jq for the README's API walk-through,
# which a test runs as printed, DejaVu fonts for PDF reports beyond Latin-1 and poppler-utils
# (pdftoppm) to look at them, and PostgreSQL, whose server the production-deployment test starts
# in a temporary directory (as the postgres user the package creates: it refuses to run as root).
# Installed once, as root, when dpkg does not have them.
SYSTEM_PACKAGES := chromium curl jq fonts-dejavu-core poppler-utils postgresql
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: setup
	$(BIN)/vault demo --hours 3

# One worker more than the cores (at most five): each test has its own home, bucket, database and
# ports, and much of the suite waits on the servers and CLIs it starts (2 cores: 20 CPU-minutes
# took 14 minutes on two workers). A file's tests stay on one worker (--dist loadfile), so a
# module's shared fixture is built once. The slowest tests are listed at the end.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: setup system
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 5 --dist loadfile --durations=15

ui: setup
	$(BIN)/vault init-instance >/dev/null
	DAGSTER_HOME=$(VAULT_HOME)/dagster $(BIN)/dagster dev -w workspace.yaml

serve: setup
	$(BIN)/vault serve --host 127.0.0.1 --port 8080

# dlt is a benchmark's yardstick (benchmarks/versus_dlt.py), never a runtime dependency.
$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

benchmark: setup $(BIN)/.bench-installed
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/pii.py
	$(BIN)/python benchmarks/verify.py
	$(BIN)/python benchmarks/analytics.py
	$(BIN)/python benchmarks/analytics.py api
	$(BIN)/python benchmarks/reports.py
	$(BIN)/python benchmarks/insights.py
	$(BIN)/python benchmarks/push.py
	$(BIN)/python benchmarks/versus_dlt.py

clean:
	rm -rf $(VAULT_HOME)
