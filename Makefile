# Two entry points: `make demo` and `make test`. Both build .venv from nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip

# stamp files: reinstall only when pyproject.toml changes
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[local,plot]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[dev]"
	touch $@ $(VENV)/.installed

# the main job: a team of agents on the embedded model (no API key, no server). A task the
# small model gets wrong makes `smesh` exit 1 (the run's truth); the demo still ran. A usage
# or configuration error (2) or Ctrl-C (130) fails `make demo`.
demo: $(VENV)/.installed
	$(BIN)/smesh agents --demo; status=$$?; test $$status -le 1

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# CI must not be flaky: with CI set (.ci/run sets it) the property tests run the "ci"
# hypothesis profile, derandomized (the same examples every run; see tests/conftest.py).
# Local runs stay random.
HYPOTHESIS_PROFILE ?= $(if $(CI),ci)

unit: $(VENV)/.installed-dev
	$(BIN)/pytest$(if $(HYPOTHESIS_PROFILE), --hypothesis-profile=$(HYPOTHESIS_PROFILE))

test: lint typecheck unit

bench: $(VENV)/.installed
	$(BIN)/smesh bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
