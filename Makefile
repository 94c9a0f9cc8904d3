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

# The suite in parallel workers (pytest-xdist), one test file per worker at a time: two on a
# 2-core machine, at most four (each study test starts Ray and its trials). `TEST_WORKERS=0`: serial.
TEST_WORKERS ?= auto --maxprocesses 4

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The edit loop: unit tests only (no Ray, no end-to-end studies, nothing slow); ~2 minutes (2:10
# measured, serial, on the 2-core development machine).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow and not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
