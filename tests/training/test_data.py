"""Training data: sources, aligned crops, identical augmentation, determinism and resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import zarr

from pipelines.imresize import imresize
from training.data import (
    BatchSchedule,
    CropConfig,
    ImageFolderSource,
    SkimageSource,
    SRDataset,
    ZarrSource,
    load_validation_pairs,
    make_training_batches,
    training_batches,
    validation_pairs_from_config,
)
from training.errors import TrainingError


def _noise(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """Random pixels of ``dtype`` (full range)."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)


def _write(path: Path, array: np.ndarray) -> Path:
    """Write an RGB(A)/grey array with OpenCV (which expects BGR order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(
            array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        )
    assert cv2.imwrite(str(path), array)
    return path


def _zarr_array(path: Path, data: np.ndarray) -> Path:
    """A Zarr v3 store holding ``data`` as its root array."""
    array = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype)
    array[...] = data
    return path


def _dataset(data: np.ndarray, tmp_path: Path, **config: int | bool) -> SRDataset:
    """An SRDataset over an (N, H, W, C) Zarr array."""
    return SRDataset(ZarrSource(_zarr_array(tmp_path / "d.zarr", data)), CropConfig(**config))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# --------------------------------------------------------------------------- sources


def test_folder_recursive_formats_and_16_bit(tmp_path: Path) -> None:
    root = tmp_path / "hr"
    deep16 = _noise((12, 10, 3), np.uint16, seed=1)
    grey16 = _noise((8, 8), np.uint16, seed=2)
    _write(root / "a.png", _noise((8, 9, 3)))
    _write(root / "rgba.png", _noise((8, 8, 4)))
    _write(root / "sub" / "b.jpg", _noise((8, 8, 3)))
    _write(root / "sub" / "deep" / "c.webp", _noise((8, 8, 3)))
    _write(root / "sub" / "deep" / "d16.tif", deep16)
    _write(root / "grey16.png", grey16)
    (root / "notes.txt").write_text("not an image")

    source = ImageFolderSource(root)
    names = [Path(source.name(i)).relative_to(root).as_posix() for i in range(len(source))]
    assert names == [
        "a.png",
        "grey16.png",
        "rgba.png",
        "sub/b.jpg",
        "sub/deep/c.webp",
        "sub/deep/d16.tif",
    ]
    for index in range(len(source)):
        image = source.load(index)
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
        assert source.shape(index) == image.shape[:2]
        assert image.min() >= 0.0 and image.max() <= 1.0
    np.testing.assert_array_equal(
        source.load(1), np.repeat(grey16[..., None], 3, 2).astype(np.float32) / 65535
    )
    np.testing.assert_array_equal(source.load(5), deep16.astype(np.float32) / 65535)
    assert len(ImageFolderSource(root, recursive=False)) == 3


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(TrainingError, match="no images found"):
        ImageFolderSource(tmp_path / "empty")


def test_paired_lr_folder(tmp_path: Path) -> None:
    hr = _noise((34, 33, 3), seed=3)  # cropped to 32x32 at scale 2
    lr = _noise((17, 16, 3), seed=4)
    _write(tmp_path / "hr" / "sub" / "x.png", hr)
    _write(tmp_path / "lr" / "sub" / "x.png", lr)
    source = ImageFolderSource(tmp_path / "hr", lr_root=tmp_path / "lr")
    dataset = SRDataset(source, CropConfig(scale=2, hr_size=16))
    whole_hr, whole_lr = dataset.pair(0)
    np.testing.assert_array_equal(whole_lr, lr)
    np.testing.assert_array_equal(whole_hr, hr[:34, :32])
    ((lr_pair, hr_pair),) = load_validation_pairs(source, 2)
    np.testing.assert_array_equal(lr_pair, lr)
    assert hr_pair.shape == (34, 32, 3) and hr_pair.dtype == np.uint8


def test_paired_lr_mismatch_and_missing(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "x.png", _noise((32, 32, 3)))
    _write(tmp_path / "lr" / "x.png", _noise((15, 16, 3)))
    source = ImageFolderSource(tmp_path / "hr", lr_root=tmp_path / "lr")
    with pytest.raises(TrainingError, match=r"lr/x\.png: LR image is 16x15, expected 16x16"):
        SRDataset(source, CropConfig(scale=2, hr_size=16))
    _write(tmp_path / "hr" / "y.png", _noise((32, 32, 3)))
    with pytest.raises(TrainingError, match=r"y\.png: no paired LR image y\.\*"):
        ImageFolderSource(tmp_path / "hr", lr_root=tmp_path / "lr")


def test_zarr_array_and_group(tmp_path: Path) -> None:
    stack = _noise((2, 8, 6, 3))
    source = ZarrSource(_zarr_array(tmp_path / "a.zarr", stack))
    assert len(source) == 2 and source.shape(1) == (8, 6)
    np.testing.assert_array_equal(source.load(1), stack[1].astype(np.float32) / 255)

    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    members = {"b": _noise((8, 8, 1), np.uint16), "a": _noise((9, 7, 4), np.float32)}
    for key, data in members.items():
        group.create_array(key, shape=data.shape, dtype=data.dtype)[...] = data
    source = ZarrSource(tmp_path / "g.zarr")
    assert [source.name(i).rsplit("/", 1)[1] for i in range(2)] == ["a", "b"]
    np.testing.assert_array_equal(source.load(0), members["a"][..., :3])
    np.testing.assert_array_equal(
        source.load(1), np.repeat(members["b"], 3, 2).astype(np.float32) / 65535
    )


def test_zarr_errors(tmp_path: Path) -> None:
    with pytest.raises(
        TrainingError, match=r"expected a \(N, H, W, C\) array.*got shape \(8, 8, 3\)"
    ):
        ZarrSource(_zarr_array(tmp_path / "hwc.zarr", _noise((8, 8, 3))))
    with pytest.raises(TrainingError, match="unsupported dtype int32"):
        ZarrSource(_zarr_array(tmp_path / "int.zarr", np.zeros((1, 8, 8, 3), np.int32)))
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("x", shape=(1, 8, 8, 3), dtype="uint8")
    with pytest.raises(TrainingError, match=r"g\.zarr/x: expected a \(H, W, C\) array"):
        ZarrSource(tmp_path / "g.zarr")
    with pytest.raises(TrainingError, match="does not exist"):
        ZarrSource(tmp_path / "missing.zarr")


def test_skimage_source() -> None:
    source = SkimageSource(["chelsea", "camera"])
    assert source.shape(0) == (300, 451)
    image = source.load(1)
    assert image.shape == (512, 512, 3) and image.dtype == np.float32
    with pytest.raises(TrainingError, match="unknown skimage photo.*lena"):
        SkimageSource(["lena"])


# --------------------------------------------------------------------------- crops


def test_shapes_and_range(tmp_path: Path) -> None:
    dataset = _dataset(_noise((3, 40, 36, 3)), tmp_path, scale=4, hr_size=32)
    batch = next(training_batches(dataset, batch_size=2, seed=0))
    assert batch["hr"].shape == (2, 3, 32, 32) and batch["lr"].shape == (2, 3, 8, 8)
    assert batch["hr"].dtype == batch["lr"].dtype == torch.float32
    assert float(batch["hr"].min()) >= 0 and float(batch["hr"].max()) <= 1


@pytest.mark.parametrize("augment", [False, True])
def test_crops_are_aligned(tmp_path: Path, augment: bool) -> None:
    """Inside the crop, imresize of the HR crop reproduces the LR crop (made from the whole image)."""
    dataset = _dataset(
        _noise((1, 44, 50, 3), np.uint16),
        tmp_path,
        scale=4,
        hr_size=32,
        flips=augment,
        rotations=augment,
    )
    for seed in range(6):
        sample = dataset[0, seed]
        hr = sample["hr"].permute(1, 2, 0).numpy().astype(np.float64)
        expected = imresize(hr, scale=0.25)[2:-2, 2:-2]
        got = sample["lr"].permute(1, 2, 0).numpy()[2:-2, 2:-2]
        np.testing.assert_allclose(got, expected, atol=0.6 / 65535)


def _dihedral(image: torch.Tensor, h: bool, v: bool, t: bool) -> torch.Tensor:
    """(C, H, W) image flipped horizontally, vertically, then transposed as selected."""
    if h:
        image = image.flip(2)
    if v:
        image = image.flip(1)
    return image.transpose(1, 2) if t else image


def test_flips_and_rotations_identical_for_lr_and_hr(tmp_path: Path) -> None:
    data = _noise((1, 24, 24, 3))
    plain = _dataset(data, tmp_path / "p", scale=2, hr_size=16, flips=False, rotations=False)
    augmented = _dataset(data, tmp_path / "a", scale=2, hr_size=16)
    seen = set()
    for seed in range(24):
        base, aug = plain[0, seed], augmented[0, seed]
        matches = [
            flags
            for flags in itertools.product([False, True], repeat=3)
            if torch.equal(_dihedral(base["hr"], *flags), aug["hr"])
            and torch.equal(_dihedral(base["lr"], *flags), aug["lr"])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 6


def test_too_small_image(tmp_path: Path) -> None:
    _write(tmp_path / "hr" / "big.png", _noise((40, 40, 3)))
    _write(tmp_path / "hr" / "small.png", _noise((40, 30, 3)))
    with pytest.raises(TrainingError, match=r"small\.png: image is 30x40, smaller than the 32x32"):
        SRDataset(ImageFolderSource(tmp_path / "hr"), CropConfig(scale=4, hr_size=32))


def test_validation_pairs_uint8(tmp_path: Path) -> None:
    hr = _noise((1, 18, 21, 3))
    ((lr, hr_out),) = load_validation_pairs(ZarrSource(_zarr_array(tmp_path / "v.zarr", hr)), 4)
    assert hr_out.dtype == lr.dtype == np.uint8
    np.testing.assert_array_equal(hr_out, hr[0, :16, :20])
    np.testing.assert_array_equal(lr, imresize(hr[0, :16, :20], scale=0.25))


# --------------------------------------------------------------------------- determinism


def test_schedule_visits_every_image_once_per_epoch() -> None:
    schedule = BatchSchedule(num_images=5, batch_size=2, seed=7)
    draws = [index for i in range(5) for index, _ in schedule.keys(i)]
    assert sorted(draws[:5]) == sorted(draws[5:]) == list(range(5))
    assert draws != BatchSchedule(5, 2, seed=8).keys(0) + BatchSchedule(5, 2, seed=8).keys(1)
    sample_seeds = {s for i in range(4) for _, s in schedule.keys(i)}
    assert len(sample_seeds) == 8  # a fresh seed for every (iteration, slot)
    assert BatchSchedule(5, 2, seed=7).keys(3) == schedule.keys(3)  # independent of earlier draws


def test_same_seed_same_batches_and_workers_do_not_matter(tmp_path: Path) -> None:
    dataset = _dataset(_noise((5, 24, 24, 3)), tmp_path, scale=2, hr_size=16)
    serial = list(itertools.islice(training_batches(dataset, 3, seed=1), 3))
    again = list(itertools.islice(training_batches(dataset, 3, seed=1), 3))
    parallel = list(itertools.islice(training_batches(dataset, 3, seed=1, num_workers=2), 3))
    for a, b, c in zip(serial, again, parallel, strict=True):
        _assert_same(a, b)
        _assert_same(a, c)
    other = next(training_batches(dataset, 3, seed=2))
    assert not torch.equal(other["hr"], serial[0]["hr"])


def test_resume_draws_the_same_batches(tmp_path: Path) -> None:
    dataset = _dataset(_noise((3, 24, 24, 3)), tmp_path, scale=2, hr_size=16)
    full = list(itertools.islice(training_batches(dataset, 2, seed=5), 6))
    resumed = list(itertools.islice(training_batches(dataset, 2, seed=5, start_iteration=3), 3))
    for a, b in zip(full[3:], resumed, strict=True):
        _assert_same(a, b)


def test_worker_errors_are_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "hr" / "x.png", _noise((16, 16, 3)))
    dataset = SRDataset(ImageFolderSource(tmp_path / "hr"), CropConfig(scale=2, hr_size=16))
    path.write_bytes(b"corrupt")
    with pytest.raises(TrainingError) as info:
        next(training_batches(dataset, 1, seed=0, num_workers=1))
    assert "x.png" in str(info.value) and "\n" not in str(info.value)


def test_from_config(tmp_path: Path) -> None:
    from training.config import load_config

    _write(tmp_path / "hr" / "x.png", _noise((20, 20, 3)))
    _zarr_array(tmp_path / "val.zarr", _noise((1, 12, 12, 3)))
    (tmp_path / "exp.yaml").write_text(
        "name: t\nstage: psnr\noutput_dir: out\nseed: 3\nmodel: {scale: 2}\noptim: {iterations: 1}\n"
        "data:\n  train: {kind: folder, path: hr}\n  validation: {kind: zarr, path: val.zarr}\n"
        "  hr_size: 16\n  batch_size: 2\n"
    )
    config = load_config(tmp_path / "exp.yaml")
    batch = next(make_training_batches(config, start_iteration=1))
    assert batch["hr"].shape == (2, 3, 16, 16) and batch["lr"].shape == (2, 3, 8, 8)
    ((lr, hr),) = validation_pairs_from_config(config)
    assert lr.shape == (6, 6, 3) and hr.shape == (12, 12, 3)
