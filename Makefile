# Everything a fresh machine needs (Python 3.11+ and make): `make run`, `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PORT ?= 8000
# The service-backed tests (real Celery workers) run against these.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/esp_forms
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14

.PHONY: install run test test-fast test-services browser bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium through Playwright (no browser download needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "chromium is missing: run 'sudo apt-get install -y chromium' (browser tests will skip)"; fi; }

run: install
	PORT=$(PORT) $(BIN)/python -m project.run

test: install browser
	$(BIN)/python -m pytest -m "not services"
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m services tests/services

test-fast: install
	$(BIN)/python -m pytest -m "not services and not browser and not fuzz and not schemathesis" -q

bench: install
	$(BIN)/python bench/emulator_throughput.py
	$(BIN)/python bench/rate_limiter.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .demo .pytest_cache
