# Each target installs what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-all demo bench chaos clean container-test lint typecheck

$(BIN)/.installed: requirements.txt requirements-dev.txt worker/requirements.txt
	@command -v $(PYTHON) >/dev/null || (echo "error: $(PYTHON) not found; run 'make PYTHON=python3 ...'" >&2; exit 2)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The project's environment for the README's `python cli.py ...` commands: then `. .venv/bin/activate`.
install: $(BIN)/.installed

# ruff.toml and mypy.ini say what each checks; CI runs both before the tests.
lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# tests/container needs root and Docker: `make container-test` runs it, never `make test`. The slowest tests are
# listed at the end, so a CI log shows where its 25 minutes go.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --ignore=tests/container --durations=20

# The worker image and a stand-in DS image under a private dockerd, against moto (tests/container/run.sh says
# what it installs and starts). Where it cannot run it says why and passes, except under CI=true.
container-test: $(BIN)/.installed
	bash tests/container/run.sh $(BIN)/python

demo: $(BIN)/.installed
	$(BIN)/python cli.py local examples/jobs.json --config examples/config.json --inputs examples/inputs

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

# The randomized fault campaign (tests/chaos): SEEDS seeds from FIRST, CHAOS_JOBS at once; a failing seed prints
# its replay command and keeps its logs. 4 at once: past that the 2 cores, not the seeds' waits, are the limit
# (bench/README.md, the fault campaign)
SEEDS ?= 20
FIRST ?= 1
CHAOS_JOBS ?= 4
chaos: $(BIN)/.installed
	$(BIN)/python -m tests.chaos --seeds $(SEEDS) --first $(FIRST) --jobs $(CHAOS_JOBS)

clean:
	rm -rf $(VENV) .pytest_cache local-run
