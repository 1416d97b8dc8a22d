# Two commands matter: `make demo` and `make test`. The rest are for working on the project.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: help venv clickhouse chromium java test demo demo-stop bench lint format lock clean

help:  ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

venv: .venv/.complete  ## Build or reuse the virtualenv (.venv)

# The ClickHouse provider's files, as scripts/bootstrap.sh lists them for the venv's key.
PROVIDER_FILES := $(shell find providers/clickhouse \( -name __pycache__ -o -name '*.egg-info' \
	-o -path providers/clickhouse/build -o -path providers/clickhouse/dist \) -prune -o -type f -print)

.venv/.complete: requirements.txt scripts/bootstrap.sh $(PROVIDER_FILES)
	@scripts/bootstrap.sh

clickhouse:  ## Install Debian's clickhouse-server if missing
	@scripts/clickhouse-local.sh install

chromium:  ## Install Debian's Chromium if missing (the UI tests' browser)
	@scripts/chromium.sh install

java:  ## Install Debian's Java runtime if missing (spark-submit's)
	@scripts/java.sh install

test: venv clickhouse chromium java  ## Run the whole test suite (starts and stops a local ClickHouse)
	@scripts/test.sh $(PYTEST_ARGS)

demo: venv clickhouse java  ## Generate a month of NSE data, serve it locally, run the DAGs, show ClickHouse
	@scripts/demo.sh

demo-stop:  ## Stop what the demo left running
	@scripts/demo.sh stop

bench: venv clickhouse java  ## Run the benchmarks, one table (BENCH="parse fetch": a subset)
	$(PY) -m bench $(BENCH)

lint: venv  ## Ruff: lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

lock: venv  ## Re-resolve requirements.in into the full lock requirements.txt
	$(HOME)/.cache/nse-airflow/uv/bin/uv pip compile requirements.in -p 3.11 --no-header -o requirements.txt

clean:  ## Remove local state (ClickHouse data, lake, Airflow home)
	-@scripts/clickhouse-local.sh stop
	rm -rf .local
