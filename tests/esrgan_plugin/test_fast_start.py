"""The command's fast start: a recorded openvino run runs again without torch, to the same bytes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny

from esrgan_plugin.arch.needs import ModelNeeds
from esrgan_plugin.arch.padding import pad_to_needs
from esrgan_plugin.cli import fast_start
from esrgan_plugin.cli.fast_start import FastUpscaler, fast_upscaler, record_key, remember
from esrgan_plugin.engines.upscalers import clear_caches, upscaler_for
from esrgan_plugin.options import UpscaleParams
from esrgan_plugin.pixels import from_float
from pipelines.io.images import read_image, write_image
from pipelines.io.images.provenance import read_provenance

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)
STEP = {"stage": "esrgan.upscale", "provenance": {"engine": "openvino"}}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(folder))
    monkeypatch.delenv(fast_start.FAST_START_ENV, raising=False)
    clear_caches()
    return folder


def _params(model: Path, **options: object) -> UpscaleParams:
    values: dict[str, object] = {"engine": "openvino", "precision": "fp32", "device": "cpu"}
    return UpscaleParams(model=str(model), **{**values, **options})


@needs_openvino
@pytest.mark.parametrize(
    ("options", "image"),
    [
        ({}, random_image(37, 29)),
        ({"tile": 16}, random_image(40, 52)),  # tiles with the measured halo
        ({"tile": 16, "halo": 4}, random_image(33, 30, 4)),  # alpha
        ({}, random_image(21, 18, None, np.uint16)),  # grey, 16-bit
        ({"outscale": 2.5, "alpha_mode": "model"}, random_image(20, 22, 4)),
    ],
)
def test_the_fast_upscaler_gives_the_usual_upscalers_bytes(
    cache: Path, tmp_path: Path, options: dict[str, object], image: np.ndarray
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    params = _params(model, **options)
    usual = upscaler_for(params)
    assert fast_upscaler(params) is None  # nothing recorded yet
    remember(params, usual, STEP)
    found = fast_upscaler(params)
    assert found is not None
    fast, step = found
    assert isinstance(fast, FastUpscaler) and step == STEP
    assert fast.halo == usual.halo and fast.precision == usual.precision == "fp32"
    expected = usual.upscale(image)
    actual = fast.upscale(image)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert np.array_equal(actual, expected)


@needs_openvino
def test_the_fast_upscaler_runs_the_column_masked_graphs_as_the_usual_path(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the engine makes column-masked graphs (bf16/int8 on AMX; forced here in fp32), the
    record names them and the fast start pads odd widths as the usual path does."""
    from esrgan_plugin.engines.openvino import engine as openvino_engine

    monkeypatch.setattr(openvino_engine, "column_multiple", lambda precision: 16)
    params = _params(save_tiny(tmp_path / "tiny.safetensors"))
    usual = upscaler_for(params)
    remember(params, usual, STEP)
    found = fast_upscaler(params)
    assert found is not None
    fast = found[0]
    assert fast.record.masked is not None and len(fast.record.masked) == 2
    assert fast.record.column_multiple == 16
    image = random_image(23, 37)
    assert np.array_equal(fast.upscale(image), usual.upscale(image))


@needs_openvino
def test_a_changed_file_option_or_missing_graph_takes_the_usual_path(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    params = _params(model)
    remember(params, upscaler_for(params), STEP)
    assert fast_upscaler(params) is not None
    assert fast_upscaler(_params(model, tile=64)) is None  # another option: another key
    assert fast_upscaler(_params(model, tta=True)) is None  # the self-ensemble needs torch
    assert fast_upscaler(_params(model, engine="pytorch")) is None
    monkeypatch.setenv(fast_start.FAST_START_ENV, "0")
    assert fast_upscaler(params) is None
    monkeypatch.delenv(fast_start.FAST_START_ENV)
    key, recorded = record_key(params), model.read_bytes()
    save_tiny(model, nf=12)  # new weights in the same file
    assert record_key(params) != key and fast_upscaler(params) is None
    model.write_bytes(recorded)  # the recorded weights again, but their graphs leave the cache
    assert fast_upscaler(params) is not None
    for graph in (cache / "openvino").iterdir():
        graph.unlink()
    assert fast_upscaler(params) is None
    records = list((cache / "fast-start").iterdir())
    records[0].write_text("{not json")
    assert fast_upscaler(params) is None  # an unreadable record: the usual path rewrites it


def test_a_model_on_another_engine_is_not_recorded(cache: Path, tmp_path: Path) -> None:
    params = _params(save_tiny(tmp_path / "tiny.safetensors"), engine="pytorch")
    remember(params, upscaler_for(params), STEP)
    assert not (cache / "fast-start").exists()


_RUN_CLI = """
import os, runpy, sys
sys.argv = ["esrgan", *sys.argv[1:]]
quick_exit = os._exit

def report(how):
    print("TORCH-LOADED" if "torch" in sys.modules else "NO-TORCH", how, file=sys.stderr)

def report_then_exit(code):
    report("QUICK-EXIT")
    sys.stderr.flush()
    quick_exit(code)

os._exit = report_then_exit
try:
    runpy.run_module("esrgan_plugin", run_name="__main__")
except SystemExit as exc:
    code = exc.code
report("SYSTEM-EXIT")
sys.exit(code)
"""


@needs_openvino
def test_the_command_runs_a_recorded_model_without_importing_torch(
    cache: Path, tmp_path: Path
) -> None:
    """Two runs of one command: the first (usual path) records, the second loads no torch,
    writes the same pixels and provenance and ends the process without freeing its graphs."""
    model = save_tiny(tmp_path / "tiny.safetensors")
    source = tmp_path / "in.png"
    write_image(source, random_image(45, 38))
    outputs, loaded = [], []
    for name in ("first.png", "second.png"):
        target = tmp_path / name
        run = subprocess.run(
            [sys.executable, "-c", _RUN_CLI, "upscale", str(source), "-o", str(target)]
            + ["--model", str(model), "--engine", "openvino", "--precision", "fp32"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        loaded.append(run.stderr.strip().splitlines()[-1])
        outputs.append(target)
    assert loaded == ["TORCH-LOADED SYSTEM-EXIT", "NO-TORCH QUICK-EXIT"]
    first, second = (read_image(p) for p in outputs)
    assert np.array_equal(first, second)
    records = [read_provenance(p) for p in outputs]
    assert records[0] is not None and records[1] is not None
    assert records[0]["steps"] == records[1]["steps"]


def test_numpy_and_torch_round_pixels_and_pad_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast start's NumPy paths (no torch loaded) give the torch paths' values."""
    values = np.random.default_rng(3).random((9, 7, 3), dtype=np.float32)
    values[0, 0], values[0, 1] = 0.0, 1.0
    with_torch = [from_float(values, np.dtype(t)) for t in (np.uint8, np.uint16)]
    monkeypatch.delitem(sys.modules, "torch")
    with_numpy = [from_float(values, np.dtype(t)) for t in (np.uint8, np.uint16)]
    monkeypatch.undo()
    for a, b in zip(with_torch, with_numpy, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    batch = values.transpose(2, 0, 1)[None].copy()
    for needs in (
        ModelNeeds(4, 3, 3, 4, 10, 8),  # reflected
        ModelNeeds(4, 3, 3, 1, 10, 8, min_size=24),  # beyond reflection: the edge replicated
        ModelNeeds(4, 3, 3, 1, 10, 8, square=True),
    ):
        padded = pad_to_needs(batch, needs)
        assert np.array_equal(padded, pad_to_needs(torch.from_numpy(batch), needs).numpy())


def test_a_model_files_hash_is_remembered_until_the_file_changes(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record key's SHA-256 comes from a memo under the file's stat signature; rewriting
    the file (same size) changes its change time, hence the hash is computed again."""
    import hashlib
    import time

    monkeypatch.setattr(fast_start, "SETTLED_SECONDS", -1.0)  # remember even a fresh file
    model = tmp_path / "weights.bin"
    model.write_bytes(b"a" * 1000)
    first = fast_start.model_sha256([model])
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()

    def no_reading(paths: object) -> str:
        raise AssertionError("hashed again although nothing changed")

    with monkeypatch.context() as patched:
        patched.setattr(fast_start, "file_sha256", no_reading)
        assert fast_start.model_sha256([model]) == first
    time.sleep(0.05)  # past the file system's timestamp granularity
    model.write_bytes(b"b" * 1000)
    assert fast_start.model_sha256([model]) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_file_changed_moments_ago_is_hashed_each_time(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_start, "SETTLED_SECONDS", 3600.0)  # "moments" on a busy machine
    model = tmp_path / "weights.bin"
    model.write_bytes(b"c" * 10)
    calls = []
    real = fast_start.file_sha256
    monkeypatch.setattr(fast_start, "file_sha256", lambda paths: calls.append(1) or real(paths))
    fast_start.model_sha256([model])
    fast_start.model_sha256([model])
    assert len(calls) == 2
