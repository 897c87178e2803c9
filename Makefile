# Two commands for users (see README):
#   make reproduce   run every notebook headless (default profile: cpu) -> executed notebooks + results/
#   make test        run the whole test suite (smoke profile for notebooks)
# Both create .venv in the repository and install requirements.txt into it first.

VENV    ?= .venv
PY      := $(VENV)/bin/python
PROFILE ?= cpu
# more options for `make reproduce`, e.g. ARGS="--only '00_*' --out build/check"
ARGS    ?=
PYTHON  ?= python3
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup reproduce test seeds data check-results clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(None if sys.version_info >= (3, 11) else "make setup needs Python >= 3.11 (the pinned transformers and torch need it); $(PYTHON) is " + sys.version.split()[0] + ": run make setup PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

reproduce: setup
	$(PY) -m helpers.reproduce --profile $(PROFILE) $(ARGS)

# Each smoke notebook runs once, in tests/test_notebooks.py (results, expected values, NBVAL_CHECK_OUTPUT cells).
test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

# The headline comparisons over training seeds 0, 1 and 2 (helpers/seeds.py): trains seeds 1 and 2 of every
# headline model (seed 0 is make reproduce's run, re-used) -> results/seeds-cpu.json
seeds: setup
	$(PY) -m helpers.seeds --profile $(PROFILE) --seeds 0 1 2

data: setup
	$(PY) -m helpers.data build --seed 0 --profile $(PROFILE) --out data/generated/$(PROFILE)-seed0
	$(PY) -m helpers.data validate data/generated/$(PROFILE)-seed0

clean:
	rm -rf build data/generated
