# `make demo` and `make test` set everything up on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench browser postgres clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# anonymeter (the attack suite's reference in tests) pins numpy<1.27 but runs on numpy 2.
	$(BIN)/python -m pip install --quiet --no-deps 'anonymeter>=1.0'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/safemicro demo --out out

# Two workers, one test file each at a time (module fixtures are built once): on 2 cores
# the suite takes about half the time of one process. `make test TEST_WORKERS=0` runs it in one.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Files already in ruff format; the format check covers only these until the whole tree is
# formatted in one go (`ruff format src tests bench`, then drop the list and check everything).
FORMATTED := \
	bench/bench_mdav.py \
	bench/bench_suppression.py \
	bench/nist/score_sdnist.py \
	src/safemicro/__init__.py \
	src/safemicro/atomic.py \
	src/safemicro/attack/__init__.py \
	src/safemicro/attack/record_linkage/__init__.py \
	src/safemicro/attack/record_linkage/exact.py \
	src/safemicro/cli_support.py \
	src/safemicro/errors.py \
	src/safemicro/evaluate/columns.py \
	src/safemicro/examples/__init__.py \
	src/safemicro/io/__init__.py \
	src/safemicro/jsonable.py \
	src/safemicro/metadata/__init__.py \
	src/safemicro/metadata/study.py \
	src/safemicro/methods/__init__.py \
	src/safemicro/methods/perturb.py \
	src/safemicro/methods/perturb_cells.py \
	src/safemicro/methods/perturb_kernels.py \
	src/safemicro/methods/recode_common.py \
	src/safemicro/methods/search_space.py \
	src/safemicro/methods/suppression_optimal.py \
	src/safemicro/methods/suppression_sdcmicro.py \
	src/safemicro/report/__init__.py \
	src/safemicro/risk/__init__.py \
	src/safemicro/risk/numeric.py \
	src/safemicro/roles.py \
	src/safemicro/service/__init__.py \
	src/safemicro/service/queries.py \
	src/safemicro/synth/__init__.py \
	src/safemicro/synth/household_rules.py \
	src/safemicro/utility/__init__.py \
	src/safemicro/utility/design.py \
	tests/conftest.py \
	tests/test_plan.py \
	tests/test_service_protection.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check $(FORMATTED)
	PYTHONPATH=src $(BIN)/lint-imports

typecheck: $(STAMP)
	PYTHONPATH=src $(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_assess.py
	$(BIN)/python bench/bench_suppression.py
	$(BIN)/python bench/bench_mdav.py

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

clean:
	rm -rf $(VENV) out .pytest_cache
