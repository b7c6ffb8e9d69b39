"""x1 restoration models and other architectures in pipelines (issue 19): the restore-then-
upscale example, and a Zarr job with a model loaded through spandrel against the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import random_image, save_tiny
from spandrel_nets import build, save

from esrgan_plugin import UpscaleOptions, Upscaler, load_model
from esrgan_plugin.cli import main as esrgan
from esrgan_plugin.engines.upscalers import clear_caches
from esrgan_plugin.models.folders import MODELS_DIR_ENV
from pipelines.io.images import read_image, write_image
from pipelines.testing import run_text

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines" / "examples"
FP32 = {"device": "cpu", "precision": "fp32", "engine": "pytorch"}


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, "")
    clear_caches()


def _reference(model: Path, image: np.ndarray) -> np.ndarray:
    return Upscaler(load_model(model), UpscaleOptions(tile=0, **FP32)).upscale(image)


def test_restore_then_upscale_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    restore = save(build("compact-x1"), models / "1x-DeJPG-OmniSR.safetensors")
    upscale = save_tiny(tmp_path / "x4.safetensors")
    photo = write_image(tmp_path / "photos" / "cat.jpg", random_image(14, 12))
    monkeypatch.setenv(MODELS_DIR_ENV, str(models))  # the example names the x1 model by stem
    text = (EXAMPLES / "restore-upscale.yaml").read_text(encoding="utf-8")
    overrides = [
        f"src.path={photo}",
        "restore.device=cpu",
        "restore.precision=fp32",
        f"sr.model={upscale}",
        "sr.device=cpu",
        "sr.precision=fp32",
        f"out.path={tmp_path}/out/{{name}}_restored_x4.png",
    ]
    summary = run_text(text, overrides=overrides, entry_points=True)
    assert summary.written == (str(tmp_path / "out" / "cat_restored_x4.png"),)
    restored = _reference(restore, read_image(photo))
    assert restored.shape == (14, 12, 3)  # x1: the size is kept
    expected = _reference(upscale, restored)
    np.testing.assert_array_equal(read_image(summary.written[0]), expected)


def test_a_zarr_job_with_a_spandrel_model_equals_the_command_line(tmp_path: Path) -> None:
    model = save(build("span"), tmp_path / "span.pth")
    image = random_image(120, 112)  # larger than a block and its halo: no block sees it all
    write_image(tmp_path / "in.png", image)
    source = zarr.create_array(
        str(tmp_path / "in.zarr"), shape=image.shape, chunks=(32, 32, 3), dtype="uint8"
    )
    source[...] = image
    halo = load_model(model).needs.receptive_radius  # exact blocks: the structural bound
    run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in.zarr"}}}}
          - {{id: sr, uses: esrgan.upscale, with: {{model: "{model}", halo: {halo}, tile: 0,
              device: cpu, precision: fp32, engine: pytorch}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.zarr"}}}}
        """,
        entry_points=True,
    )
    blockwise = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    cli = [
        "upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "cli.png"), "--model",
        str(model), "--tile", "0", "--device", "cpu", "--precision", "fp32", "--engine", "pytorch",
    ]  # fmt: skip
    assert esrgan(cli) == 0
    whole = read_image(tmp_path / "cli.png")
    assert blockwise.shape == whole.shape == (480, 448, 3)
    difference = np.abs(blockwise.astype(int) - whole.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # float rounding only
