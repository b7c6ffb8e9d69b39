"""The metric table behind ``esrgan eval``: RGB metrics against BasicSR, LR consistency, names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.imresize import imresize
from pipelines.io.images import read_image
from training.evaluation.measures import (
    MeasureContext,
    compute,
    lr_psnr,
    parse_measures,
    to_8bit_colour,
)
from training.evaluation.niqe import load_niqe_model
from training.metrics import psnr

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "reference" / "metrics_vectors.json"


@pytest.fixture(scope="module")
def context() -> MeasureContext:
    return MeasureContext(0, load_niqe_model())


def test_rgb_and_y_metrics_match_basicsr(shared_images: Path, context: MeasureContext) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"metric reference values not found at {REFERENCE}")
    for entry in json.loads(REFERENCE.read_text())["pairs"].values():
        test = read_image(shared_images / entry["test"])
        hr = read_image(shared_images / entry["hr"])[: test.shape[0], : test.shape[1]]
        assert compute("psnr-rgb", test, context, hr=hr) == pytest.approx(
            entry["psnr_rgb_crop0"], abs=1e-3
        )
        assert compute("ssim-rgb", test, context, hr=hr) == pytest.approx(
            entry["ssim_rgb_crop0"], abs=1e-4
        )
        cropped = MeasureContext(4, context.niqe_model)
        assert compute("psnr", test, cropped, hr=hr) == pytest.approx(
            entry["psnr_y_crop4"], abs=1e-3
        )


def test_lr_consistency_catches_a_colour_shift(shared_images: Path) -> None:
    hr = read_image(shared_images / "set14_comic_hr.png")
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = imresize(hr, 0.25)
    faithful = lr_psnr(hr, lr)  # the HR explains its own bicubic LR
    shifted = hr.astype(np.int16)
    shifted[..., 2] += 12  # a blue cast, as some models give
    cast = lr_psnr(np.clip(shifted, 0, 255).astype(np.uint8), lr)
    assert faithful > 45 and cast < faithful - 10
    assert lr_psnr(hr, lr) == pytest.approx(psnr(imresize(hr, output_shape=lr.shape[:2]), lr))


def test_lr_consistency_crops_the_lr_border() -> None:
    rng = np.random.default_rng(0)
    sr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lr = imresize(sr, 0.25)
    lr[0, 0] = 255 - lr[0, 0]  # a corrupt corner pixel, cropped away with crop_border 4
    assert lr_psnr(sr, lr, crop_border=4) == float("inf")
    assert lr_psnr(sr, lr) < 60


def test_grey_and_16_bit_images(context: MeasureContext) -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    assert to_8bit_colour(grey.astype(np.uint16) * 257).tolist() == grey.tolist()
    rgba = np.dstack([grey, grey, grey, np.zeros_like(grey)])
    assert to_8bit_colour(rgba).shape == (40, 40, 3)
    other = np.clip(grey.astype(int) + 3, 0, 255).astype(np.uint8)
    as_rgb = compute("psnr", np.dstack([grey] * 3), context, hr=np.dstack([other] * 3))
    assert compute("psnr", grey, context, hr=other) == pytest.approx(as_rgb)


@pytest.mark.parametrize(
    ("text", "names"),
    [("psnr,ssim", ("psnr", "ssim")), (" NIQE , niqe,lr-psnr ", ("niqe", "lr-psnr"))],
)
def test_parse_measures(text: str, names: tuple[str, ...]) -> None:
    assert parse_measures(text) == names


@pytest.mark.parametrize(("text", "message"), [(",", "empty"), ("psnr,lpips", "'lpips'")])
def test_parse_measures_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_measures(text)


def test_niqe_is_left_out_with_a_note_for_an_image_too_small_for_it(
    context: MeasureContext,
) -> None:
    from training.evaluation.evaluate import Sample, score

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    with_ma = MeasureContext(0, context.niqe_model, lambda image: 5.0)  # pi is built on NIQE
    notes: list[str] = []
    for _ in range(2):  # scored twice (two sweep methods): one note each
        values = score(Sample("tiny", small, hr=small), ("psnr", "niqe", "pi"), with_ma, notes)
        assert values == {"psnr": float("inf")}
    reason = "NIQE needs at least 96x96 pixels after cropping, got 64x80"
    assert notes == [f"tiny: niqe left out ({reason})", f"tiny: pi left out ({reason})"]
    big = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert set(score(Sample("big", big), ("niqe",), context, notes)) == {"niqe"}
    assert len(notes) == 2
