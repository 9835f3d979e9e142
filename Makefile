# Set-up and checks.  `make demo` runs the main job, `make test` the test suite;
# each creates .venv and installs what it needs on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint generate check-generated notebooks-html bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/lowrank demo --out runs/demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy numeric

check-generated: install
	$(BIN)/python -m derive generate --check

# two pytest-xdist workers (JOBS=auto: one per core); files are kept whole on a worker
# (--dist loadfile) so module-level compiled functions and trained runs are made once
JOBS ?= 2
test: lint check-generated
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile
	$(BIN)/python -m pytest -q --doctest-modules numeric/optax.py numeric/optax_methods.py numeric/rules

generate: install
	$(BIN)/python -m derive generate

notebooks-html: install
	$(BIN)/python notebooks/render.py --out notebooks/html

bench: install
	$(BIN)/lowrank bench --json runs/bench.json

clean:
	rm -rf $(VENV) runs reports notebooks/html .pytest_cache .ruff_cache
