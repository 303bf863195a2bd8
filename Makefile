# charwatch: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench bench-quick clean help

help:
	@echo "make demo        create .venv, install, run the whole chain on the fixture platform"
	@echo "make test        create .venv, install, run the test suite (in two processes)"
	@echo "make test-fast   the suite without the slow end-to-end tests, in two processes"
	@echo "make lint        ruff check + format check"
	@echo "make bench       benchmarks -> bench/results/latest.json and latest.md"
	@echo "make bench-quick a small benchmark run (smoke test)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/charwatch demo

# Both run in two xdist processes, each test module whole in one (its fixtures made once),
# the longest modules of the last run first (tests/conftest.py keeps their times in
# pytest's cache), so that both processes finish together.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache *.egg-info
