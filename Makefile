# The README's commands. Each target bootstraps what it needs on a fresh machine.
SHELL := /bin/bash
UV_VERSION := 0.13.9
export UV_LINK_MODE := copy
# Trust the platform certificate store too (machines behind a TLS-inspecting proxy).
export UV_SYSTEM_CERTS := 1
# uv from PATH, else the one pip installs (run as a module, wherever pip put its script).
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
PY := .venv/bin/python
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.PHONY: demo test bench ui lint sandbox env system-deps clean sql deploy-local

# Python environment from the lock file (uv is installed with pip if missing).
env: .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet --user "uv==$(UV_VERSION)" \
	  || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-groups
	@touch $@

# Debian packages some tests need (headless Chromium for the UI and report tests; PostgreSQL's server
# for the production deployment and its test).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (needed by the page-rendering tests)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium: run as root or install it with apt-get"; exit 1; }; }
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql (the deployment's database server, and its test's)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	  || { echo "could not install postgresql: run as root or install it with apt-get"; exit 1; }; }

demo: env
	$(PY) -m orchestration.demo

test: env system-deps
	$(PY) -m pytest

bench: env
	$(PY) -m bench

ui: env
	$(PY) -m orchestration.ui

# The production deployment on this machine: PostgreSQL on 127.0.0.1:55432 (data/deploy/postgres), the
# Dagster daemon (queued runs, schedules, concurrency pools) and the webserver on 127.0.0.1:3000.
deploy-local: env system-deps
	$(PY) -m orchestration.deployment up

sandbox: env
	$(PY) -m connectors.sandbox --port 8765 --preset demo --seed 7

# A read-only SQL shell on the analyst file: the DuckDB CLI from PyPI (duckdb-cli), run by uv in an
# isolated, cached environment, so it needs neither the project's venv nor a system install. The file
# is written in storage version v1.4.0, which this CLI (and any DuckDB from 1.4 on) reads.
# Interactive in a terminal; `echo "SELECT 42;" | make -s sql` answers a query from standard input.
DUCKDB_CLI_VERSION := 1.5.6
ANALYST_DB ?= $(or $(STEPWISE_ANALYST_DB),data/stepwise.duckdb)
sql:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet --user "uv==$(UV_VERSION)" \
	  || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@test -f "$(ANALYST_DB)" || { echo "no analyst file at $(ANALYST_DB): run \`make demo\` first (or set STEPWISE_ANALYST_DB)" >&2; exit 1; }
	@$(UV) tool run --quiet --from "duckdb-cli==$(DUCKDB_CLI_VERSION)" duckdb -readonly "$(ANALYST_DB)"

lint: env
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy connectors transforms reporting orchestration

clean:
	rm -rf data .dagster_home .pytest_cache .ruff_cache .mypy_cache
