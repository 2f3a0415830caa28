# The quickstart: `make sweep` runs the default sweep, `make test` runs the checks.
# Both create .venv and install what they need on first use.
VENV ?= .venv
PYTHON ?= python3
# The torch build to install first (torchvision goes with it: torch-fidelity needs it).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
# pytest workers (pytest-xdist): one per core; a test file stays on one worker (--dist loadfile).
WORKERS ?= auto

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

.PHONY: install sweep test lint bench docs
install: $(VENV)/.installed

sweep: install
	$(VENV)/bin/skipsearch sweep $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest -q -n $(WORKERS) --dist loadfile $(ARGS)

docs: install
	$(VENV)/bin/mkdocs build --strict $(ARGS)

bench: install
	$(VENV)/bin/python benchmarks/trial_overhead.py $(ARGS)
