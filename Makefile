# The project's commands. `make setup` is idempotent and fast once .venv/ exists.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup run examples test test-fast fuzz bench bench-gpu eval eval-tta eval-int8 lint default-models clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	$(PY) -m compileall -q esrgan_plugin pipelines training >/dev/null  # as pip does for a wheel
	touch $(STAMP)

run: setup
	$(PY) scripts/demo.py --out out/demo

# The sample inputs of the example pipelines in pipelines/examples/ (photos/ and data/ here, from
# scikit-image's photos; scripts/example_inputs.py); then run any example from here:
#   .venv/bin/pipelines run pipelines/examples/zarr-upscale.yaml
examples: setup
	$(PY) scripts/example_inputs.py

# Two pytest processes: the training tests run in their own. One process running the whole
# suite (Dask clusters, OpenVINO, Zarr, then in-process DDP training) crashed inside CPython's
# attribute lookup (_PyObject_GetInstanceAttribute, SIGSEGV) at tests/training/test_distributed.py
# on 2026-12-01, every time, while every subset passed. On 2026-12-02 two whole one-process runs
# (70fca72, f2aa327) finished without it, and a third on 2026-12-03; the cause was never
# identified (the fixed leak of Dask's nanny variables is one candidate), so the split stays
# until one is (docs/testing.md).
# A third process runs the napari widget's tests (tests/napari_widget) with napari's, npe2's and
# pytest-qt's pytest plugins on (pyproject turns them off elsewhere: they import Qt into every
# test process), under a virtual display (xvfb-run) when there is no display.
NAPARI_PYTEST := $(PY) -m pytest -q -p napari -p napari-plugin-engine -p npe2 -p pytest-qt
HEADLESS := $(if $(DISPLAY)$(WAYLAND_DISPLAY),,$(if $(shell command -v xvfb-run),xvfb-run -a -s "-screen 0 1280x1024x24"))

test: setup
	$(PY) -m pytest -q --ignore=tests/training --ignore=tests/napari_widget
	$(PY) -m pytest -q tests/training
	$(HEADLESS) $(NAPARI_PYTEST) tests/napari_widget

test-fast: setup
	$(PY) -m pytest -q -m "not slow" --ignore=tests/training --ignore=tests/napari_widget
	$(PY) -m pytest -q -m "not slow" tests/training
	$(HEADLESS) $(NAPARI_PYTEST) -m "not slow" tests/napari_widget

# The fuzz properties (tests/fuzz/) with a large budget: FUZZ_EXAMPLES new examples per property
# (`make test` runs the same properties with 20 fixed ones).
FUZZ_EXAMPLES ?= 2000
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -m fuzz -p no:cacheprovider \
		--hypothesis-show-statistics -W ignore::UserWarning --timeout 7200 tests/fuzz

bench: setup
	$(PY) bench/bench_speed.py
	$(PY) bench/bench_video.py
	$(PY) bench/bench_video_memory.py
	$(PY) bench/bench_small_networks.py
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_zarr.py
	$(PY) bench/bench_ome.py
	$(PY) bench/bench_niqe.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_tiles.py memory
	$(PY) bench/bench_tiles.py curve
	$(PY) bench/bench_winograd.py

# GPU check (bench/bench_gpu.py): on a machine without CUDA it prints one line and exits 0.
bench-gpu: setup
	$(PY) bench/bench_gpu.py

eval: setup
	$(PY) bench/eval_models.py

# Self-ensemble gain and uncertainty-map ranking on Set14 (about 10 minutes on 2 CPU cores).
eval-tta: setup
	$(PY) bench/eval_tta.py

# int8 quality: dB against fp32, Set14 against the HR, NIQE's noise, per-block sensitivity
# (about 10 minutes on 2 CPU cores).
eval-int8: setup
	$(PY) bench/eval_int8.py

# Retrain the two shipped models from scratch (stage 1, then stage 2 from it) and install them.
WEIGHTS := esrgan_plugin/weights
default-models: setup
	rm -rf runs/default-psnr runs/default-gan
	$(VENV)/bin/esrgan train training/configs/default-psnr.yaml
	$(VENV)/bin/esrgan train training/configs/default-gan.yaml
	mkdir -p $(WEIGHTS)
	cp runs/default-psnr/generator.safetensors $(WEIGHTS)/default-psnr.safetensors
	cp runs/default-gan/generator.safetensors $(WEIGHTS)/default-gan.safetensors

lint: setup
	$(PY) -m ruff check esrgan_plugin pipelines training tests bench scripts
	$(PY) -m ruff format --check esrgan_plugin pipelines training tests bench scripts
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
