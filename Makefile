# The project's commands. `make setup` is idempotent and fast once .venv/ exists.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup test test-all bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/bench_inference.py

lint: setup
	$(PY) -m ruff check esrgan_plugin pipelines training tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
