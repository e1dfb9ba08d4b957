# ao — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# The repository ao manages: REPO=DIR, else the directory `make` was started from, so
# `make -C ~/ao run` inside your repository runs ao there (the shell's PWD; make -C keeps it).
REPO   ?= $(or $(PWD),$(CURDIR))

.PHONY: run test test-fast test-faults lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	cd "$(REPO)" && "$(abspath $(BIN))/ao" start --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m ao_site.layers
	$(BIN)/mypy

# Two workers: the suite is dominated by real processes (daphne, tmux, git, Chromium) waiting.
test: lint
	$(BIN)/pytest -n 2 --dist loadfile

# The fault suite alone (real processes killed at chosen points), twice in a row: it must pass both.
test-faults: $(VENV)/.installed-test
	$(BIN)/pytest -p no:xdist tests/faults
	$(BIN)/pytest -p no:xdist tests/faults

test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -m 'not slow'

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-test
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-output
