# Each target installs what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test test-all demo bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt worker/requirements.txt
	@command -v $(PYTHON) >/dev/null || (echo "error: $(PYTHON) not found; run 'make PYTHON=python3 ...'" >&2; exit 2)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto

demo: $(BIN)/.installed
	$(BIN)/python cli.py local examples/jobs.json --config examples/config.json --inputs examples/inputs

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache local-run
