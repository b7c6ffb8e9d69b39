"""int8 calibration: the activation ranges of an RRDBNet on a few images, and which images.

Calibration runs the fp32 network over a few images and records each dense block's activation
ranges (minimum and maximum: on RealESRGAN_x4plus the 99.99th percentile clipped values the
output needs, 35.7 dB against 41.7 dB): its input, its features ``x1 .. x4`` together, each
feature on its own and each channel of its input on its own; and the input range of each of
the tail's convolutions. Both int8 engines (oneDNN's, :mod:`esrgan_plugin.engines.onednn.int8`,
and OpenVINO's, which also uses each feature's and each input channel's own range) quantise on
these ranges.

The default set is four 64x64 crops of photos inside scikit-image (a dependency already), so
``--precision int8`` works offline with nothing chosen; the OpenVINO engine adds six crops of
photos and textures shrunk to a quarter (``LR_CROPS``). A user set is a folder or a list of
image files; each contributes its central crop (at most ``CROP`` pixels a side). Results are
cached (:mod:`esrgan_plugin.cache`) per model weights, calibration pixels (for the default set:
its photos, crops and scikit-image's release) and method version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esrgan_plugin.arch.rrdbnet import RRDBNet
from esrgan_plugin.cache import CALIBRATIONS, cached, entry_path, weights_sha256
from esrgan_plugin.engines.onednn.fused import FP32, FusedRRDBNet
from esrgan_plugin.errors import InferenceError
from esrgan_plugin.pixels import to_tensor
from pipelines.api import read_image

log = logging.getLogger(__name__)

CALIBRATION_VERSION = 5
"""Bumped when the calibration method changes, so cached ranges are recomputed (3: the tail's
input ranges too; 4: each feature's range too; 5: each channel's range of the block input)."""

CROP = 64
"""Side of each calibration crop (LR pixels): the int8 ranges settle with four of these."""

MAX_IMAGES = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
DEFAULT_CROPS = (  # (scikit-image photo, top, left): none of them is the benchmark's astronaut
    ("coffee", 100, 200),
    ("chelsea", 50, 100),
    ("rocket", 200, 100),
    ("hubble_deep_field", 0, 0),
)
LR_CROPS = ("coffee", "rocket", "chelsea", "grass", "gravel", "brick")
"""scikit-image photos and textures whose central crop, after shrinking the image to a quarter
(MATLAB bicubic), joins the OpenVINO engine's default set: shrunk photos have the dense detail
of the low-resolution images users upscale, which drives some dense blocks' features well past
what full-size photo crops reach (2.3-3.4x in three blocks on Set14's baboon). Measured on
RealESRGAN_x4plus with the stretched per-feature ranges (2026-12-03; dB against fp32 on the
whole cat photo / 192x192 coffee and astronaut crops / Set14's baboon and comic LR images):
40.61 / 47.99 / 48.86 / 32.73 / 38.85, against 40.44 / 44.97 / 48.89 / 31.17 / 37.10 with one
features range on the photo crops alone (``docs/benchmarks.md``). No Set14 image is among
them."""


@dataclass(frozen=True)
class ActivationRange:
    """The float range ``[low, high]`` one dense block's uint8 activations cover."""

    low: float
    high: float

    @property
    def scale(self) -> float:
        return max(self.high - self.low, 1e-8) / 255.0

    @property
    def zero_point(self) -> int:
        return int(np.clip(round(-self.low / self.scale), 0, 255))


@dataclass(frozen=True)
class BlockRanges:
    """A dense block's uint8 ranges: its input ``x``, its features ``x1 .. x4`` together, and
    (empty in a calibration that did not record them) each feature on its own (``parts``) and
    each channel of ``x`` on its own (``channels``)."""

    x: ActivationRange
    features: ActivationRange
    parts: tuple[ActivationRange, ...] = ()
    channels: tuple[ActivationRange, ...] = ()


@dataclass(frozen=True)
class Calibration:
    """Per-dense-block activation ranges for one model and one calibration set."""

    ranges: tuple[BlockRanges, ...]
    tail: tuple[ActivationRange, ...] = ()
    """Input ranges of the tail's convolutions (each up-sampling conv, then ``conv_hr``)."""
    version: int = CALIBRATION_VERSION

    def to_json(self) -> str:
        rows = [
            {
                "bounds": _flat([r.x, r.features, *r.parts]),
                "channels": _flat(r.channels),
            }
            for r in self.ranges
        ]
        tail = [[r.low, r.high] for r in self.tail]
        return json.dumps({"version": self.version, "ranges": rows, "tail": tail})

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        ranges = tuple(_block_ranges(row) for row in data["ranges"])
        tail = tuple(ActivationRange(float(a), float(b)) for a, b in data.get("tail", []))
        return cls(ranges, tail, int(data["version"]))


def _flat(ranges: Sequence[ActivationRange]) -> list[float]:
    return [bound for r in ranges for bound in (r.low, r.high)]


def _pairs(values: Sequence[float]) -> list[ActivationRange]:
    return [
        ActivationRange(float(values[i]), float(values[i + 1])) for i in range(0, len(values), 2)
    ]


def _block_ranges(row: list[float] | dict[str, list[float]]) -> BlockRanges:
    """A calibration row: the input's and the features' bounds, then each feature's (a list,
    as versions 3 and 4 wrote it), with each input channel's (a mapping, from version 5)."""
    if isinstance(row, list):
        row = {"bounds": row}
    bounds = _pairs(row["bounds"])
    return BlockRanges(
        bounds[0],
        bounds[1],
        tuple(bounds[2:]),
        tuple(_pairs(row.get("channels", []))),
    )


class _RangeObserver:
    """Minimum and maximum of each dense block's input, of its features together, of each
    feature and of each input channel (0 always inside)."""

    def __init__(self, blocks: int) -> None:
        self.bounds: list[list[float]] = [[] for _ in range(blocks)]
        self.channels: list[torch.Tensor | None] = [None] * blocks

    def __call__(self, index: int, features: Sequence[torch.Tensor]) -> None:
        bounds = self.bounds[index]
        if not bounds:
            bounds.extend([0.0] * 2 * (len(features) + 1))
        for i, f in enumerate(features):
            low, high = (float(v) for v in torch.aminmax(f.detach()))
            places = [0] if i == 0 else [2, 2 * (i + 1)]  # x; or the features and its own
            for at in places:
                bounds[at] = min(bounds[at], low)
                bounds[at + 1] = max(bounds[at + 1], high)
        self.channels[index] = _channel_bounds(features[0], self.channels[index])

    def rows(self) -> list[dict[str, list[float]]]:
        """Each block's calibration row (:func:`_block_ranges`)."""
        return [
            {"bounds": bounds, "channels": [] if channels is None else channels.flatten().tolist()}
            for bounds, channels in zip(self.bounds, self.channels, strict=True)
        ]


def _channel_bounds(x: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
    """Each channel's (low, high) of NCHW ``x`` (0 inside), merged with ``known``."""
    x = x.detach()
    seen = torch.stack([x.amin((0, 2, 3)).clamp(max=0), x.amax((0, 2, 3)).clamp(min=0)], 1)
    if known is None:
        return seen
    return torch.stack(
        [torch.minimum(known[:, 0], seen[:, 0]), torch.maximum(known[:, 1], seen[:, 1])], 1
    )


def calibrate(net: RRDBNet, images: Iterable[torch.Tensor]) -> Calibration:
    """Run the fp32 network on NCHW float images and record each dense block's ranges, and
    the input range of each of the tail's convolutions."""
    plan = FusedRRDBNet(net, FP32)
    observer = _RangeObserver(3 * net.config.num_blocks)
    tail = [[0.0, 0.0] for _ in range(len(plan.up_convs) + 1)]

    def observe(index: int, x: torch.Tensor) -> None:
        low, high = torch.aminmax(x)
        tail[index] = [min(tail[index][0], float(low)), max(tail[index][1], float(high))]

    count = 0
    for image in images:
        plan(image, record=observer, record_tail=observe)
        count += 1
    if count == 0:
        raise ValueError("calibration needs at least one image")
    return Calibration(
        tuple(_block_ranges(row) for row in observer.rows()),
        tuple(ActivationRange(a, b) for a, b in tail),
    )


def default_images(with_lr_crops: bool = False) -> list[np.ndarray]:
    """The built-in calibration set: four natural-photo crops (uint8 RGB), and with
    ``with_lr_crops`` the central crops of ``LR_CROPS`` shrunk to a quarter."""
    from skimage import data

    photos = [
        getattr(data, name)()[top : top + CROP, left : left + CROP]
        for name, top, left in DEFAULT_CROPS
    ]
    if not with_lr_crops:
        return photos
    return photos + [_central_crop(_quarter(getattr(data, name)())) for name in LR_CROPS]


def _quarter(image: np.ndarray) -> np.ndarray:
    """A uint8 grey or RGB image shrunk to a quarter (MATLAB bicubic, rounded back to uint8),
    as RGB."""
    from pipelines.api import imresize

    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return imresize(image[..., :3], 0.25)


def user_images(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[np.ndarray]:
    """Central crops of the images in a folder, or of a list of image files."""
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


def builtin_set_key(*parts: object) -> str:
    """The cache key's image part for a built-in crop set: the photos' names and corners and the
    scikit-image release they come from, so a cached answer is found without decoding a photo
    (decoding the built-in photos cost about 0.5 s of every command's start). A change to how
    the crops are cut must bump the caller's method version, which the key also holds."""
    import skimage

    release = getattr(skimage, "__version__", "unknown")  # lazy-loaded: not in its stubs
    return "builtin|" + "|".join(map(repr, parts)) + f"|scikit-image={release}"


def images_digest(images: Sequence[torch.Tensor]) -> str:
    """SHA-256 of the calibration pixels (the cache key's calibration part)."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.numpy().tobytes())
    return digest.hexdigest()


def calibration_inputs(
    net: RRDBNet,
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    with_lr_crops: bool = False,
) -> list[torch.Tensor]:
    """The calibration crops of ``source`` (None = the default set) as ``net``'s NCHW inputs."""
    raw = default_images(with_lr_crops) if source is None else user_images(source)
    return [to_tensor(image, net.config.in_channels) for image in raw]


def calibration_for(
    net: RRDBNet,
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    with_lr_crops: bool = False,
) -> Calibration:
    """The int8 calibration of ``net`` on ``source`` (None = the default set, with the LR crops
    when asked), from the cache if there."""
    channels = net.config.in_channels
    if source is None:  # the photos are decoded only when the ranges are not cached
        lr_crops = LR_CROPS if with_lr_crops else ()
        images_key = builtin_set_key(DEFAULT_CROPS, lr_crops, CROP, f"channels={channels}")
        images: list[torch.Tensor] | None = None
    else:
        images = calibration_inputs(net, source, with_lr_crops)
        images_key = images_digest(images)
    blocks = 3 * net.config.num_blocks
    key = CALIBRATIONS.key(weights_sha256(net), images_key, f"v{CALIBRATION_VERSION}")

    def read(path: Path) -> Calibration | None:
        found = Calibration.from_json(path.read_text())
        ok = found.version == CALIBRATION_VERSION and len(found.ranges) == blocks
        return found if ok else None

    def build() -> Calibration:
        crops = images if images is not None else calibration_inputs(net, None, with_lr_crops)
        log.info("calibrating int8 on %d image(s) (once per model and image set)", len(crops))
        return calibrate(net, crops)

    path = entry_path(CALIBRATIONS, key)
    return cached(path, build, read, lambda tmp, found: tmp.write_text(found.to_json()))
