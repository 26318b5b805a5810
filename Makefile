# The verbs a newcomer types. Each calls the real tool.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Django 6 needs Python 3.12+: pyenv's 3.12.1 when it is there, else python3.12 on PATH.
PYTHON6 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.1/bin/python) python3.12)
VENV6 ?= .venv6
BIN6 := $(VENV6)/bin

.PHONY: demo test test-postgres test-rabbitmq test-django6 test-django6-postgres \
	test-django6-tasks lint format schema bench \
	install install-django6 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

$(BIN6)/python:
	$(PYTHON6) -m venv $(VENV6)
	$(BIN6)/python -m pip install --quiet --upgrade pip

$(VENV6)/.installed: $(BIN6)/python pyproject.toml
	$(BIN6)/python -m pip install --quiet -e ".[dev]" "Django>=6.0,<7"
	touch $@

install-django6: $(VENV6)/.installed

demo: install
	$(BIN)/python demo/manage.py migrate --no-input
	$(BIN)/python demo/manage.py run_demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -n 2

test-postgres: install
	HTTP_HOOKS_DB=postgres $(BIN)/python -m pytest -n 2

# The Celery tests again, on the RabbitMQ at 127.0.0.1:5672 (guest/guest) and PostgreSQL.
RABBITMQ_URL ?= amqp://guest:guest@127.0.0.1:5672//
test-rabbitmq: install
	CELERY_BROKER_URL=$(RABBITMQ_URL) HTTP_HOOKS_DB=postgres $(BIN)/python -m pytest -n 2 \
		api_tests/test_celery.py

test-django6: install-django6
	$(BIN6)/python -m pytest -n 2

test-django6-postgres: install-django6
	HTTP_HOOKS_DB=postgres $(BIN6)/python -m pytest -n 2

# Django 6's own tasks framework with its worker, on SQLite (the whole suite of Django 6
# runs on PostgreSQL in CI).
test-django6-tasks: install-django6
	$(BIN6)/python -m pytest -n 2 -m tasks

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
	$(BIN)/python bench/admin.py

clean:
	rm -rf $(VENV) $(VENV6) demo/db.sqlite3 .pytest_cache .ruff_cache
