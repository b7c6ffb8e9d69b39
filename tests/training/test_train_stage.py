"""The ``esrgan.train`` stage and the train -> gan -> interpolate -> upscale example pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import random_image

from esrgan_plugin import UpscaleOptions, Upscaler, load_model
from pipelines.io.images import read_image, write_image
from pipelines.testing import run_text

ROOT = Path(__file__).resolve().parents[2]


def test_train_interpolate_upscale_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "pipelines" / "examples" / "train-interpolate-upscale.yaml").read_text()
    text = text.replace("training/configs/", f"{ROOT}/training/configs/")
    photo = write_image(tmp_path / "photos" / "p.png", random_image(10, 9))
    monkeypatch.chdir(tmp_path)
    summary = run_text(text, entry_points=True)
    psnr, gan, mix = (tmp_path / summary.artefacts[k] for k in ("psnr", "gan", "mix"))
    assert psnr == tmp_path / "out" / "runs" / "psnr" / "generator.safetensors"
    assert (
        load_model(gan).metadata["stage"] == "gan"
        and load_model(gan).metadata["vgg_weights"] == "random"
    )
    assert mix == tmp_path / "out" / "models" / "mix_0.8.safetensors"
    expected = Upscaler(load_model(mix), UpscaleOptions(tile=0, device="cpu")).upscale(
        read_image(photo)
    )
    actual = read_image(tmp_path / "out" / "p_mix.png")
    from esrgan_plugin import stages
    from esrgan_plugin.options import UpscaleParams

    via_stage = stages.upscale(read_image(photo), UpscaleParams(model=str(mix), engine="torch"))
    np.testing.assert_array_equal(via_stage, expected)
    np.testing.assert_array_equal(actual, expected)


def test_pretrained_override_is_refused_for_a_psnr_stage(tmp_path: Path) -> None:
    from training.errors import TrainingError
    from training.stage import TrainParams, train_stage

    with pytest.raises(TrainingError, match="pretrained applies to a gan stage"):
        train_stage(
            TrainParams(
                config=str(ROOT / "training/configs/tiny-psnr.yaml"),
                output_dir=str(tmp_path),
                pretrained="x",
            )
        )
