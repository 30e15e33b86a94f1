# Conveyor's developer commands. Every target runs through `uv run` in the workspace's venv.
#   make dev             all services + one worker, SQLite and a Redis of its own; Ctrl-C stops all
#   make test            every member's tests (unit, integration, e2e); real PostgreSQL/Redis
#                        from TEST_DATABASE_URL/TEST_REDIS_URL, else embedded servers
#   make lint            ruff check + ruff format --check
#   make typecheck       mypy (strict) over every src folder
#   make all             lint + typecheck + test
#   make check-isolated  each service synced alone from the lockfile and imported (no phantom deps)
#   make lock            update uv.lock after changing a pyproject.toml
#   make bench           Conveyor against bare Celery: table on stdout, JSON in bench/results/
#                        (BENCH_ARGS=--quick for the short run; see docs/performance.md)
#   make clean           caches and build leftovers (keeps .venv and the dev data in .conveyor/)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# uv must never fetch an interpreter: the machines have Python 3.11.
export UV_PYTHON_DOWNLOADS := never

# Found when a recipe runs (after `ensure-uv` may have installed it), not when make starts.
UV = $(or $(shell command -v uv 2>/dev/null),$(wildcard $(HOME)/.local/bin/uv),python3 -m uv)

SRC_DIRS = $(wildcard libs/*/src services/*/src bench/src)
# Longest first: .ci/run_tests.py runs two folders at a time in this order (and skips repeats).
# The root suite is split by folder (e2e, fault, security, ...) so its parts can share the lanes.
TEST_DIRS = $(wildcard tests/fault services/job-service/tests services/worker/tests) \
	$(patsubst %/,%,$(filter-out %__pycache__/,$(wildcard tests/*/))) \
	$(wildcard services/*/tests bench/tests libs/*/tests deploy/tests)
PYTEST_ARGS ?=
BENCH_ARGS ?=
# Member name and import name of everything `check-isolated` installs on its own.
ISOLATED ?= api-gateway:api_gateway job-service:job_service result-service:result_service \
	conveyor-worker:conveyor_worker conveyor-common:conveyor_common \
	conveyor-client:conveyor_client conveyor-devstack:conveyor_devstack \
	conveyor-testing:conveyor_testing conveyor-bench:conveyor_bench

.PHONY: help ensure-uv sync dev test bench lint typecheck all check-isolated lock clean

help:
	@sed -n '2,13s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

ensure-uv:
	@if ! command -v uv >/dev/null 2>&1 && [ ! -x "$(HOME)/.local/bin/uv" ] \
		&& ! python3 -m uv --version >/dev/null 2>&1; then \
		echo "uv not found: installing it with pip"; \
		python3 -m pip install --quiet --disable-pip-version-check --user uv \
		|| python3 -m pip install --quiet --disable-pip-version-check uv \
		|| python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv; \
	fi

sync: ensure-uv
	$(UV) sync --locked

dev: sync
	$(UV) run --locked python -m conveyor_devstack.dev

# One pytest process per test folder, two at a time (see .ci/run_tests.py), then one summary.
test: sync
	$(UV) run --locked python .ci/run_tests.py $(TEST_DIRS) -- $(PYTEST_ARGS)

# Takes the machine's cores for minutes: run it alone. PostgreSQL and Redis as for the tests
# (BENCH_DATABASE_URL/TEST_DATABASE_URL, BENCH_REDIS_URL), else servers of its own.
bench: sync
	$(UV) run --locked python -m conveyor_bench --out bench/results $(BENCH_ARGS)

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck: sync
	$(UV) run --locked mypy $(SRC_DIRS)

all: lint typecheck test

check-isolated: ensure-uv
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for spec in $(ISOLATED); do \
		package=$${spec%%:*}; module=$${spec##*:}; \
		echo "== $$package alone: sync --locked, import $$module and every submodule"; \
		UV_PROJECT_ENVIRONMENT="$$tmp/$$package" $(UV) sync --locked --quiet \
			--package "$$package" --no-default-groups; \
		"$$tmp/$$package/bin/python" .ci/import_all.py "$$module"; \
	done

lock: ensure-uv
	$(UV) lock

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache dist build
	find . -path ./.venv -prune -o -type d \( -name __pycache__ -o -name '*.egg-info' \) \
		-prune -exec rm -rf {} +
