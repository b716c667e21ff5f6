# `make demo` and `make test` set everything up on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench browser postgres java clean docs exercises

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# anonymeter (the attack suite's reference in tests) pins numpy<1.27 but runs on numpy 2.
	$(BIN)/python -m pip install --quiet --no-deps 'anonymeter>=1.0'
	# pycanon (t-closeness, δ-disclosure, β-likeness reference in tests) pins numpy==2.0.2 and
	# typer==0.23.2 exactly; its measures need only numpy and pandas.
	$(BIN)/python -m pip install --quiet --no-deps 'pycanon==1.3.6'
	touch $(STAMP)

DOCS_STAMP := $(VENV)/.docs-installed

# (the test extra includes the docs extra: a venv made by `make test` builds the site too)
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

demo: $(STAMP)
	$(BIN)/safemicro demo --out out

# Two workers, one test file each at a time (module fixtures are built once): on 2 cores
# the suite takes about half the time of one process. `make test TEST_WORKERS=0` runs it in one.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The documentation site into site/ (open site/index.html), offline, warnings are errors. The
# guide's numbers and the tutorials are computed by this tree's code while it builds.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 PYTHONPATH=src $(BIN)/mkdocs build --strict

# The one-day course: trainer (with solutions) and participant notebooks from the tutorials.
exercises: $(STAMP)
	PYTHONPATH=src $(BIN)/python docs/scripts/exercises.py --out build/exercises

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	PYTHONPATH=src $(BIN)/lint-imports

typecheck: $(STAMP)
	PYTHONPATH=src $(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_assess.py
	$(BIN)/python bench/bench_suppression.py
	$(BIN)/python bench/bench_mdav.py
	$(BIN)/python bench/bench_workbench.py

# Headless Chromium for the report's browser test (Debian; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# PostgreSQL server binaries (initdb, pg_ctl) for the service tests (Debian; needs root or sudo).
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# Java 17 for the Spark engine's tests (pyspark runs on a local JVM; Debian; needs root or sudo).
java:
	@command -v java >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

clean:
	rm -rf $(VENV) out .pytest_cache site build/exercises
