"""The sample inputs of the example pipelines (`make examples`), from scikit-image's photos.

The examples in ``pipelines/examples/`` name their inputs relative to the working directory, as
every path in a pipeline is (docs/pipelines.md, "Relative paths"), and are written to be run
from the repository root. This writes, under ``--root`` (default: the working directory):

* ``photos/``: chelsea and coffee as ``.jpg``, astronaut and rocket as ``.png`` (scikit-image
  ships them), 128 pixels on the long side (denoise-upscale, folder-batch, alpha-sweep,
  interpolate-upscale, sweep-report, train-interpolate-upscale);
* ``data/slide.zarr``: a (256, 256, 3) uint8 Zarr array (zarr-upscale);
* ``data/cells.ome.zarr``: a 3-channel uint16 (c, y, x) OME-Zarr 0.5 image with a pixel size
  and a 2-level pyramid, as the ``ome-zarr`` package writes it (ome-zarr-upscale; skipped with a
  note when that package, the ``ome`` extra, is not installed);
* ``training/configs/tiny-{psnr,gan}.yaml``: copies of the repository's tiny experiments, when
  ``--root`` is not the repository (train-interpolate-upscale).

So every example runs from ``--root``.

Existing files are kept (delete them to make them again).

    python scripts/example_inputs.py [--root DIR]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from skimage import data

from pipelines.imresize import imresize
from pipelines.io.images import write_image

PHOTOS = {"chelsea": ".jpg", "coffee": ".jpg", "astronaut": ".png", "rocket": ".png"}
"""scikit-image photos used as the examples' inputs, and the format each is written in (one
name, one file: ``folder-batch`` writes every photo of the folder by its name)."""

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "pipelines" / "examples"
CONFIG_FOLDER = Path("training") / "configs"
CONFIGS = ("tiny-psnr.yaml", "tiny-gan.yaml")
"""Training experiments an example names (copied when the inputs go outside the repository)."""

SIDE = 128
"""Long side of the sample photos: small, so that every example runs in seconds on a CPU."""


def photo(name: str) -> np.ndarray:
    """A scikit-image photo, downscaled (MATLAB-style bicubic) to ``SIDE`` on its long side."""
    image = getattr(data, name)()
    scale = SIDE / max(image.shape[:2])
    return np.clip(imresize(image, scale) + 0.5, 0, 255).astype(np.uint8)


def write_photos(folder: Path) -> list[Path]:
    """Each photo in its format in ``folder``; those already there are kept."""
    made = []
    for name, suffix in PHOTOS.items():
        path = folder / f"{name}{suffix}"
        if not path.exists():
            made.append(write_image(path, photo(name)))
    return made


def write_slide(path: Path) -> list[Path]:
    """A (256, 256, 3) uint8 Zarr array in 128-pixel chunks (the astronaut, downscaled x2)."""
    import zarr

    if path.exists():
        return []
    image = np.clip(imresize(data.astronaut(), 0.5) + 0.5, 0, 255).astype(np.uint8)
    array = zarr.create_array(str(path), shape=image.shape, chunks=(128, 128, 3), dtype="uint8")
    array[...] = image
    return [path]


def write_cells(path: Path) -> list[Path]:
    """A 3-channel uint16 OME-Zarr image (c, y, x), 0.25 micrometre pixels, 2 levels."""
    if path.exists():
        return []
    try:
        import zarr
        from ome_zarr.format import FormatV05
        from ome_zarr.writer import write_image as write_ome_image
    except ImportError:
        print(f"note: {path} not made: it needs the ome-zarr package (pip install '.[ome]')")
        return []
    rgb = photo("coffee").astype(np.uint16) * 257  # three channels with structure, 16 bits
    cyx = np.ascontiguousarray(np.moveaxis(rgb, -1, 0))
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    write_ome_image(
        cyx,
        group,
        axes="cyx",
        fmt=FormatV05(),
        scale={"c": 1.0, "y": 0.25, "x": 0.25},
        axes_units={"y": "micrometer", "x": "micrometer"},
        scale_factors=(2,),
        storage_options={"chunks": (3, 64, 64)},
    )
    return [path]


def write_configs(root: Path) -> list[Path]:
    """The tiny training experiments train-interpolate-upscale names, at the same relative path
    (nothing to do in the repository itself, which has them)."""
    made = []
    for name in CONFIGS:
        source, target = REPO / CONFIG_FOLDER / name, root / CONFIG_FOLDER / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            made.append(target)
    return made


def make(root: Path) -> list[Path]:
    """Every sample input under ``root``; returns what was made (existing ones are kept)."""
    return [
        *write_photos(root / "photos"),
        *write_configs(root),
        *write_slide(root / "data" / "slide.zarr"),
        *write_cells(root / "data" / "cells.ome.zarr"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="where photos/ and data/ go (default: here)")
    args = parser.parse_args()
    made = make(Path(args.root))
    for path in made:
        print(f"made {path}")
    print(
        f"sample inputs in {Path(args.root).resolve()}; run the examples from there, e.g. "
        f"pipelines run {EXAMPLES / 'zarr-upscale.yaml'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
