"""Dataset preparation: HR sub-images and their MATLAB-bicubic LR counterparts in one Zarr store.

As BasicSR's ``extract_subimages`` does for DIV2K: every HR image (cropped to a multiple of the
scale) is cut into ``crop`` x ``crop`` sub-images every ``step`` pixels, plus a last row/column
flush with the border when more than ``thresh_size`` pixels would be left over. The LR image is
made once from the whole HR image with the MATLAB-compatible ``imresize`` (as DIV2K's own LR
images are) and cut at the same places, so LR pixel (y, x) covers HR pixels [y*s, (y+1)*s).

Layout of ``DATA.zarr`` (Zarr v3): ``hr`` (N, crop, crop, C) and ``lr`` (N, crop/s, crop/s, C),
one chunk per sub-image, zstd-compressed and CRC-32C checksummed; ``done`` (one uint8 per source
image) is the completion record, set only after that image's sub-images are stored; each image's
entry (file, positions, SHA-256 of every sub-image) is kept in ``.prepare/IMAGE.json`` and all of
them in ``manifest.json`` at the end. One Dask task per source image, on threads, a LocalCluster
or a scheduler; a killed run resumes with the images whose record is set skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipelines.api import atomic_target
from training.data.pixels import downscale, mod_crop
from training.data.sources import header_shape, image_files, read_file
from training.data.zarr_source import PREPARED_FORMAT as FORMAT
from training.errors import TrainingError
from training.prepare_options import PrepareOptions

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RECORDS = ".prepare"


@dataclass(frozen=True)
class ImagePlan:
    """One source image: its file, upright size, and the sub-images it gives."""

    file: str
    height: int
    width: int
    first: int
    origins: tuple[tuple[int, int], ...]


def axis_origins(length: int, crop: int, step: int, thresh_size: int) -> list[int]:
    """Sub-image starts along one axis, as BasicSR's ``extract_subimages`` places them."""
    starts = list(range(0, length - crop + 1, step))
    if starts and length - (starts[-1] + crop) > thresh_size:
        starts.append(length - crop)
    return starts


def plan(root: Path, options: PrepareOptions) -> list[ImagePlan]:
    """Every image under ``root`` (sorted) with its sub-image origins, from the file headers."""
    files = image_files(root, recursive=True)
    if not files:
        raise TrainingError(f"{root}: no images found")
    plans, first = [], 0
    for path in files:
        height, width = header_shape(path)
        height, width = height - height % options.scale, width - width % options.scale
        if min(height, width) < options.crop:
            raise TrainingError(
                f"{path}: image is {width}x{height}, smaller than the {options.crop}-pixel "
                "sub-image (use --crop with a smaller size)"
            )
        ys = axis_origins(height, options.crop, options.step, options.thresh_size)
        xs = axis_origins(width, options.crop, options.step, options.thresh_size)
        origins = tuple((y, x) for y in ys for x in xs)
        name = path.relative_to(root).as_posix()
        plans.append(ImagePlan(name, height, width, first, origins))
        first += len(origins)
    return plans


def _attributes(plans: Sequence[ImagePlan], options: PrepareOptions, dtype: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "options": options.model_dump(),
        "dtype": dtype,
        "images": [p.file for p in plans],
        "count": sum(len(p.origins) for p in plans),
    }


def _create(
    out: Path, plans: Sequence[ImagePlan], options: PrepareOptions, dtype: str, channels: int
) -> None:
    """Create the store's arrays (one checksummed chunk per sub-image) and the empty record."""
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    count = sum(len(p.origins) for p in plans)
    group = zarr.open_group(str(out), mode="w", attributes=_attributes(plans, options, dtype))
    for name, side in (("hr", options.crop), ("lr", options.crop // options.scale)):
        group.create_array(
            name,
            shape=(count, side, side, channels),
            chunks=(1, side, side, channels),
            dtype=dtype,
            fill_value=0,
            compressors=(ZstdCodec(level=3), Crc32cCodec()),
            dimension_names=("n", "y", "x", "c"),
        )
    group.create_array("done", shape=(len(plans),), chunks=(1,), dtype="uint8", fill_value=0)
    (out / RECORDS).mkdir(exist_ok=True)


def _matches(out: Path, plans: Sequence[ImagePlan], options: PrepareOptions, dtype: str) -> bool:
    """Whether the store at ``out`` was started with the same images and options."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    except Exception:
        return False
    return attrs == _attributes(plans, options, dtype)


def prepare_image(
    out: str, root: str, item: dict[str, Any], options: dict[str, Any], index: int
) -> dict[str, Any]:
    """One Dask task: cut one image's HR/LR sub-images, store them, then set its record."""
    import zarr

    entry = ImagePlan(**{**item, "origins": tuple(tuple(o) for o in item["origins"])})
    opts = PrepareOptions(**options)
    group = zarr.open_group(out, mode="r+")
    hr_array: Any = group["hr"]
    lr_array: Any = group["lr"]
    done: Any = group["done"]
    hr_image = np.ascontiguousarray(mod_crop(read_file(Path(root) / entry.file), opts.scale))
    if hr_image.dtype != hr_array.dtype:
        raise TrainingError(
            f"{Path(root) / entry.file}: samples are {hr_image.dtype}, the dataset is "
            f"{hr_array.dtype} (prepare 8- and 16-bit images separately)"
        )
    lr_image = downscale(hr_image, opts.scale)
    crop, lr_crop = opts.crop, opts.crop // opts.scale
    digests = []
    for k, (y, x) in enumerate(entry.origins):
        hr = hr_image[y : y + crop, x : x + crop]
        ly, lx = y // opts.scale, x // opts.scale
        lr = lr_image[ly : ly + lr_crop, lx : lx + lr_crop]
        hr_array[entry.first + k] = hr
        lr_array[entry.first + k] = lr
        digests.append(
            {
                "hr_sha256": hashlib.sha256(np.ascontiguousarray(hr).tobytes()).hexdigest(),
                "lr_sha256": hashlib.sha256(np.ascontiguousarray(lr).tobytes()).hexdigest(),
            }
        )
    record = {**asdict(entry), "sub_images": digests}
    with atomic_target(Path(out) / RECORDS / f"{index:08d}.json") as tmp:
        tmp.write_text(json.dumps(record))
    done[index] = 1
    return record


def prepare_dataset(
    hr_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: PrepareOptions | None = None,
    executor: str = "threads",
    overwrite: bool = False,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Prepare (or resume preparing) ``output`` from ``hr_dir``; returns the manifest."""
    import dask

    from pipelines.api import ExecutorConfig, execute

    options = options or PrepareOptions()
    root, out = Path(hr_dir), Path(output)
    if not root.is_dir():
        raise TrainingError(f"{root}: HR image folder does not exist")
    plans = plan(root, options)
    sample = read_file(root / plans[0].file)
    dtype, channels = str(sample.dtype), int(sample.shape[2])
    if out.exists() and not _matches(out, plans, options, dtype):
        if not overwrite:
            raise TrainingError(
                f"{out}: exists and was not prepared from these images with these options; "
                "pass --overwrite to replace it"
            )
        shutil.rmtree(out)
    if not out.exists():
        _create(out, plans, options, dtype, channels)
    done = _done(out)
    todo = [i for i in range(len(plans)) if not done[i]]
    log.info("%s: %d of %d images to prepare", out, len(todo), len(plans))
    task = dask.delayed(prepare_image, pure=False)
    targets = [
        task(
            str(out),
            str(root),
            asdict(plans[i]),
            options.model_dump(),
            i,
            dask_key_name=f"prepare-{i}",
        )
        for i in todo
    ]
    execute(targets, ExecutorConfig.model_validate(executor), progress)
    return _write_manifest(out, plans, options, dtype)


def _done(out: Path) -> np.ndarray:
    import zarr

    record: Any = zarr.open_group(str(out), mode="r")["done"]
    return np.asarray(record[...]) == 1


def _write_manifest(
    out: Path, plans: Sequence[ImagePlan], options: PrepareOptions, dtype: str
) -> dict[str, Any]:
    """Gather the per-image records into ``manifest.json`` (atomically); all must be done."""
    if not _done(out).all():
        raise TrainingError(f"{out}: some images are not prepared; run the command again")
    records = [json.loads((out / RECORDS / f"{i:08d}.json").read_text()) for i in range(len(plans))]
    manifest = {**_attributes(plans, options, dtype), "sources": records}
    with atomic_target(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest
