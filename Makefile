# Everything a fresh machine needs (Python 3.11+ and make): `make run`, `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PORT ?= 8000
# The service-backed tests (real Celery workers) run against these.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/esp_forms
TEST_BROKER_URL ?= redis://127.0.0.1:6379/14
# bench/ runs against these (the database is created if missing; its rows are deleted).
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/esp_forms_bench
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/13

.PHONY: install run test test-fast test-services test-readme browser gettext messages bench lint clean

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

# The gettext tools (xgettext, msgmerge, msgfmt): `make messages` and the catalog test use them.
gettext:
	@command -v msgmerge >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq gettext; \
	  else echo "gettext is missing: run 'sudo apt-get install -y gettext'"; fi; }

# Regenerate the app's catalogs from the code and templates, compile them, and list what is
# left to translate (new or changed strings come out empty or "fuzzy").
LANGS ?= uk ru
messages: install gettext
	cd esp_forms && ../$(BIN)/python ../manage.py makemessages --no-wrap $(addprefix -l ,$(LANGS)) \
	  && ../$(BIN)/python ../manage.py compilemessages $(addprefix -l ,$(LANGS))
	$(BIN)/python -m tests.catalog $(LANGS)

run: install
	PORT=$(PORT) $(BIN)/python -m project.run

# esp_forms.contrib.wagtail needs Wagtail's apps: its tests run with their own settings.
WAGTAIL_TESTS := tests/wagtail_site --ds=tests.wagtail_site.settings

test: install browser gettext
	$(BIN)/python -m pytest -m "not services and not readme"
	$(BIN)/python -m pytest $(WAGTAIL_TESTS)
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m services tests/services
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m readme tests/readme

test-fast: install
	$(BIN)/python -m pytest -m "not services and not browser and not readme and not fuzz and not schemathesis" -q
	$(BIN)/python -m pytest $(WAGTAIL_TESTS) -m "not browser" -q

# The README's "Add it to your site" in a fresh venv and project (PostgreSQL and Redis).
test-readme: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(BIN)/python -m pytest -m readme tests/readme

bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then apt-get install -y -qq wrk || true; \
	  else echo "wrk is missing ('sudo apt-get install -y wrk'): a Python load generator is used"; fi; }
	$(BIN)/python bench/emulator_throughput.py
	$(BIN)/python bench/rate_limiter.py
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) BENCH_BROKER_URL=$(BENCH_BROKER_URL) \
	  $(BIN)/python bench/report.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .demo .pytest_cache
