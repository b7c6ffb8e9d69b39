"""int8 calibration sets and their cache: which images calibrate, and where the result is kept.

The default set is four 64x64 crops of photos inside scikit-image (a dependency already), so
``--precision int8`` works offline with nothing chosen. A user set is a folder or a list of
image files; each contributes its central crop (at most ``CROP`` pixels a side). Ranges are
cached as small JSON files keyed by the model's weights, the calibration pixels and the
calibration method, under ``$ESRGAN_CACHE_DIR`` (default ``$XDG_CACHE_HOME/esrgan-pipelines``
or ``~/.cache/esrgan-pipelines``), written atomically; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.int8 import CALIBRATION_VERSION, Calibration, calibrate, weights_digest
from esrgan_plugin.model_cache import cache_dir

log = logging.getLogger(__name__)

CROP = 64
"""Side of each calibration crop (LR pixels): the int8 ranges settle with four of these."""

MAX_IMAGES = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_DEFAULT_CROPS = (  # (scikit-image photo, top, left): none of them is the benchmark's astronaut
    ("coffee", 100, 200),
    ("chelsea", 50, 100),
    ("rocket", 200, 100),
    ("hubble_deep_field", 0, 0),
)


def default_images() -> list[np.ndarray]:
    """The built-in calibration set: four natural-photo crops (uint8 RGB)."""
    from skimage import data

    return [
        getattr(data, name)()[top : top + CROP, left : left + CROP]
        for name, top, left in _DEFAULT_CROPS
    ]


def user_images(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[np.ndarray]:
    """Central crops of the images in a folder, or of a list of image files."""
    from pipelines.io.images import read_image

    paths: list[Path]
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if root.is_dir():
            paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths = [root]
    else:
        paths = [Path(p) for p in source]
    if not paths:
        raise InferenceError(f"calibration: no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    crops = []
    for path in paths[:MAX_IMAGES]:
        if not path.is_file():
            raise InferenceError(f"calibration image {path} does not exist")
        try:
            image = read_image(path)
        except Exception as exc:
            raise InferenceError(f"calibration image {path}: {exc}") from None
        crops.append(_central_crop(image))
    return crops


def _central_crop(image: np.ndarray) -> np.ndarray:
    top = max(0, (image.shape[0] - CROP) // 2)
    left = max(0, (image.shape[1] - CROP) // 2)
    return image[top : top + CROP, left : left + CROP]


def to_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    """uint8/uint16/float HWC or HW image -> NCHW float32 in [0, 1] with ``channels`` channels."""
    from esrgan_plugin.inference import to_float

    pixels = to_float(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    pixels = pixels[..., :3] if pixels.shape[2] == 4 else pixels
    if pixels.shape[2] != channels:
        pixels = (
            np.repeat(pixels[..., :1], channels, axis=2)
            if pixels.shape[2] == 1
            else pixels.mean(axis=2, keepdims=True)
        )
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


def images_digest(images: Sequence[torch.Tensor]) -> str:
    """SHA-256 of the calibration pixels (the cache key's calibration part)."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.numpy().tobytes())
    return digest.hexdigest()


def calibration_for(
    net: RRDBNet, source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None
) -> Calibration:
    """The int8 calibration of ``net`` on ``source`` (None = default set), from cache if there."""
    raw = default_images() if source is None else user_images(source)
    images = [to_tensor(image, net.config.in_channels) for image in raw]
    key = f"{weights_digest(net)[:24]}-{images_digest(images)[:24]}"
    path = cache_dir() / "int8" / f"{key}.json"
    try:
        text = path.read_text()
        if f'"version": {CALIBRATION_VERSION},' in text:  # an older method's entry: recalibrate
            cached = Calibration.from_json(text)
            if len(cached.ranges) == 3 * net.config.num_blocks:
                return cached
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("int8 calibration cache entry %s unreadable (%s); recalibrating", path, exc)
    log.info("calibrating int8 on %d image(s); cached in %s", len(images), path)
    result = calibrate(net, images)
    _store(path, result)
    return result


def _store(path: Path, calibration: Calibration) -> None:
    from pipelines.io.atomic import atomic_target

    try:
        with atomic_target(path) as tmp:
            tmp.write_text(calibration.to_json())
    except OSError as exc:  # a read-only cache costs a recalibration next time, nothing else
        log.warning("could not cache int8 calibration in %s: %s", path, exc)
