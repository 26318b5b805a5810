# The verbs a newcomer types. Each calls the real tool.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test test-postgres lint format schema bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python demo/manage.py migrate --no-input
	$(BIN)/python demo/manage.py load_demo_data --base-url http://$(HOST):$(PORT)
	$(BIN)/python demo/manage.py run_demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -n 2

test-postgres: install
	HTTP_HOOKS_DB=postgres $(BIN)/python -m pytest -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python demo/manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(BIN)/python demo/manage.py spectacular --file openapi.yaml --validate --fail-on-warn

bench: install
	$(BIN)/python bench/save_overhead.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) demo/db.sqlite3 .pytest_cache .ruff_cache
