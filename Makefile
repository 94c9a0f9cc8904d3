# `make run`: the quick study end to end; `make test`: the whole suite.
# Both create .venv when missing. CPU machines get the pinned CPU torch from constraints-cpu.txt;
# GPU machines: `make CONSTRAINTS= test` after installing your own torch into .venv (README).
PYTHON ?= python3
CONSTRAINTS ?= constraints-cpu.txt
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint venv

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/wae-study run quick

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

# The edit loop: unit tests only (no Ray, no end-to-end studies, nothing slow); under 2 minutes.
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow and not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
