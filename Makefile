# copa: `make run` (install and start) and `make test` (install what the tests need and run them).
# Both are idempotent and quiet when there is nothing to do.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.copa-run
DEV_STAMP := $(VENV)/.copa-dev
# Debian packages the tests need (compilers, emulators, tmux...), one per line, '#' comments allowed.
APT_LISTS := $(wildcard firmware/apt-packages.txt tests/apt-packages.txt)

.PHONY: run install dev test test-python test-firmware lint fuzz bench system-deps clean

run: $(RUN_STAMP)
	@$(VENV)/bin/copa

install: $(RUN_STAMP)

dev: $(DEV_STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "copa needs Python >= 3.11; set PYTHON=/path/to/python3.11 (found: $$($(PYTHON) --version 2>&1))" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing copa into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check -e . 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c 'import copa.cli.main' && touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing copa and its test tools into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c 'import copa.cli.main, pytest' && touch $@ $(RUN_STAMP)

# Installs missing Debian packages when root or with password-less sudo; otherwise says what is missing.
system-deps:
	@command -v dpkg-query >/dev/null || exit 0; \
	pkgs="$$(sed 's/#.*//' $(APT_LISTS) /dev/null | xargs)"; missing=""; \
	for p in $$pkgs; do dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "note: missing Debian packages:$$missing; run 'sudo make system-deps' (their tests are skipped until then)"; exit 0; fi; \
	echo "installing Debian packages:$$missing"; \
	$$sudo apt-get update -qq >/dev/null && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null

test: $(DEV_STAMP) system-deps test-firmware test-python

test-firmware:
	@if [ -f firmware/Makefile ]; then $(MAKE) -s -C firmware test; fi

test-python: $(DEV_STAMP)
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The CLI fuzz test at length: fresh random examples each run (make test runs a fixed, bounded sample).
FUZZ_EXAMPLES ?= 5000
fuzz: $(DEV_STAMP)
	@COPA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) COPA_FUZZ_RANDOM=1 $(PY) -m pytest -q -p no:cacheprovider \
	  tests/foundation/test_cli_fuzz.py tests/foundation/test_reliability_cli.py

lint: $(DEV_STAMP)
	@$(VENV)/bin/ruff check copa tests benchmarks skills

# Each benchmark with its quick defaults (docs/benchmarks.md gives the commands of the recorded runs).
BENCHES := startup.py "memory_recall.py --no-ablations" memory_scale.py agent_overhead.py skills.py \
	daemon_idle.py firmware.py bridge.py tui.py

bench: $(DEV_STAMP)
	@for b in $(BENCHES); do echo "== benchmarks/$$b"; $(PY) benchmarks/$$b || exit 1; echo; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
	@if [ -f firmware/Makefile ]; then $(MAKE) -s -C firmware clean; fi
