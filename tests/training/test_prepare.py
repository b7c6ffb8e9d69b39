"""esrgan prepare-data: BasicSR's sub-image placement, exact HR/LR pairs, checksums, resume, and
training from the prepared store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from esrgan_plugin.cli import main as esrgan_main
from pipelines.imresize import imresize
from pipelines.io.images import write_image
from training.data import CropConfig, PreparedZarrSource, SRDataset
from training.errors import TrainingError
from training.prepare import MANIFEST, axis_origins, prepare_dataset
from training.prepare_options import PrepareOptions

OPTIONS = PrepareOptions(crop=32, step=24, thresh_size=0, scale=4)


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / (4 + c)) * np.cos(yy / (6 + c + seed)) for c in range(3)], -1)
    return ((base * 0.4 + 0.5 + rng.normal(0, 0.05, (h, w, 3))).clip(0, 1) * 255).astype(np.uint8)


def _open(path: Path, mode: str = "r") -> Any:
    """The prepared store's group (typed loosely: zarr's stubs cannot tell arrays from groups)."""
    return zarr.open_group(str(path), mode=mode)  # type: ignore[arg-type]


@pytest.fixture
def hr_dir(tmp_path: Path) -> Path:
    write_image(tmp_path / "hr" / "a.png", _photo(70, 58, 0))  # mod-crop 4: 68 x 56
    write_image(tmp_path / "hr" / "sub" / "b.png", _photo(40, 33, 1))
    return tmp_path / "hr"


def test_origins_follow_basicsr_extract_subimages() -> None:
    # DIV2K 2040 x 1356 with crop 480, step 240, thresh_size 0 (BasicSR's settings)
    assert axis_origins(1356, 480, 240, 0) == [0, 240, 480, 720, 876]
    assert axis_origins(2040, 480, 240, 0) == [0, 240, 480, 720, 960, 1200, 1440, 1560]
    assert axis_origins(1356, 480, 240, 200) == [0, 240, 480, 720]  # 156 left over <= 200
    assert axis_origins(480, 480, 240, 0) == [0]


def test_pairs_are_exact_crops_of_the_hr_and_its_whole_image_bicubic_lr(
    hr_dir: Path, tmp_path: Path
) -> None:
    manifest = prepare_dataset(hr_dir, tmp_path / "d.zarr", OPTIONS)
    group: Any = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")
    assert group["hr"].chunks == (1, 32, 32, 3) and group["lr"].chunks == (1, 8, 8, 3)
    # a: 68 x 56 -> ys [0, 24, 36], xs [0, 24]; b: 40 x 32 -> ys [0, 8], xs [0]
    assert manifest["count"] == 6 + 2 == group["hr"].shape[0]
    hr = np.asarray(_photo(70, 58, 0))[:68, :56]
    lr = imresize(hr, output_shape=(17, 14))
    first = manifest["sources"][0]
    assert first["file"] == "a.png" and [tuple(o) for o in first["origins"]] == [
        (0, 0),
        (0, 24),
        (24, 0),
        (24, 24),
        (36, 0),
        (36, 24),
    ]
    for k, (y, x) in enumerate(first["origins"]):
        np.testing.assert_array_equal(group["hr"][k], hr[y : y + 32, x : x + 32])
        np.testing.assert_array_equal(group["lr"][k], lr[y // 4 : y // 4 + 8, x // 4 : x // 4 + 8])
    for source in manifest["sources"]:
        for k, digests in enumerate(source["sub_images"]):
            stored = np.asarray(group["hr"][source["first"] + k])
            assert hashlib.sha256(stored.tobytes()).hexdigest() == digests["hr_sha256"]
    assert json.loads((tmp_path / "d.zarr" / MANIFEST).read_text()) == manifest


def test_a_killed_run_resumes_without_redoing_finished_images(hr_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.zarr"
    expected = prepare_dataset(hr_dir, out, OPTIONS)
    group: Any = zarr.open_group(str(out), mode="r+")
    group["hr"][6:8] = 7  # image b "half written" when the run was killed: record not set
    group["done"][1] = 0
    (out / MANIFEST).unlink()
    before = {p: p.stat().st_mtime_ns for p in (out / "hr").rglob("*") if p.is_file()}
    assert prepare_dataset(hr_dir, out, OPTIONS) == expected
    after = {p: p.stat().st_mtime_ns for p in (out / "hr").rglob("*") if p.is_file()}
    changed = {p.relative_to(out / "hr").parts[1] for p in after if before.get(p) != after[p]}
    assert changed == {"6", "7"}  # chunk keys c/6/..., c/7/...: only image b was redone
    stored = np.asarray(_open(out)["hr"][6])
    assert (
        hashlib.sha256(stored.tobytes()).hexdigest()
        == expected["sources"][1]["sub_images"][0]["hr_sha256"]
    )


def test_other_options_on_an_existing_store_are_refused(hr_dir: Path, tmp_path: Path) -> None:
    prepare_dataset(hr_dir, tmp_path / "d.zarr", OPTIONS)
    other = PrepareOptions(crop=16, step=16, scale=4)
    with pytest.raises(TrainingError, match="pass --overwrite"):
        prepare_dataset(hr_dir, tmp_path / "d.zarr", other)
    assert prepare_dataset(hr_dir, tmp_path / "d.zarr", other, overwrite=True)["count"] > 8


def test_training_source_reads_prepared_pairs_crop_by_crop(hr_dir: Path, tmp_path: Path) -> None:
    prepare_dataset(hr_dir, tmp_path / "d.zarr", OPTIONS)
    source = PreparedZarrSource(tmp_path / "d.zarr")
    group: Any = zarr.open_group(str(tmp_path / "d.zarr"), mode="r")
    assert len(source) == 8 and source.has_lr and source.lr_shape(3) == (8, 8)
    np.testing.assert_array_equal(source.read_lr(7), group["lr"][7])
    dataset = SRDataset(source, CropConfig(scale=4, hr_size=16, flips=False, rotations=False))
    sample = dataset[(5, 123)]
    hr, lr = sample["hr"].permute(1, 2, 0).numpy(), sample["lr"].permute(1, 2, 0).numpy()
    whole_hr = np.asarray(group["hr"][5]) / 255.0
    whole_lr = np.asarray(group["lr"][5]) / 255.0
    found = [
        (y, x)
        for y in range(5)
        for x in range(5)
        if np.allclose(whole_lr[y : y + 4, x : x + 4], lr, atol=1e-6)
        and np.allclose(whole_hr[4 * y : 4 * y + 16, 4 * x : 4 * x + 16], hr, atol=1e-6)
    ]
    assert found  # the LR crop and the HR crop come from the same place


def test_unfinished_store_is_refused_for_training(hr_dir: Path, tmp_path: Path) -> None:
    prepare_dataset(hr_dir, tmp_path / "d.zarr", OPTIONS)
    _open(tmp_path / "d.zarr", "r+")["done"][0] = 0
    with pytest.raises(TrainingError, match="preparation is unfinished"):
        PreparedZarrSource(tmp_path / "d.zarr")


def test_command_line(hr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "d.zarr")
    assert (
        esrgan_main(["prepare-data", str(hr_dir), "-o", out, "--crop", "32", "--step", "24"]) == 0
    )
    assert "8 sub-image pairs from 2 images" in capsys.readouterr().out
    assert esrgan_main(["prepare-data", str(hr_dir), "-o", out, "--crop", "30"]) == 1
    err = capsys.readouterr().err
    assert "crop 30 and step 240 must be multiples of scale 4" in err and err.count("\n") == 1
    assert esrgan_main(["prepare-data", str(hr_dir), "-o", out, "--crop", "64"]) == 1
    assert "smaller than the 64-pixel sub-image" in capsys.readouterr().err


def test_prepare_data_stage_returns_the_store(hr_dir: Path, tmp_path: Path) -> None:
    from training.stage import PrepareDataParams, prepare_data_stage

    out = str(tmp_path / "d.zarr")
    params = PrepareDataParams(hr_dir=str(hr_dir), output=out, crop=32, step=24)
    assert prepare_data_stage(params) == out
    assert len(PreparedZarrSource(out)) == 8
