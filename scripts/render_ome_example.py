"""Render docs/images/ome-zarr-x4.jpg: an OME-Zarr uint16 3-channel image through the example YAML.

The input is a 64 x 64 crop of scikit-image's immunohistochemistry image (brightfield, shipped in
its wheel), reduced x4 with MATLAB-style bicubic and stored as (c, y, x) uint16 using 12 bits
(0..4095, as a 12-bit camera writes), with omero windows, by the ``ome-zarr`` package. It runs
through ``pipelines/examples/ome-zarr-upscale.yaml`` with the default model; the result is read
back with ``ome-zarr``'s reader. Panels: input (nearest x4) | bicubic x4 | pipeline output |
the original crop. Usage: ``python scripts/render_ome_example.py [OUT.jpg]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEAK = 4095


def make_input(folder: Path) -> np.ndarray:
    """Write the OME-Zarr input; returns the original (HR) crop as (y, x, 3) uint16."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image
    from skimage import data

    from pipelines.imresize import imresize

    hr = data.immunohistochemistry()[180:436, 200:456].astype(np.float64) / 255.0
    lr = np.clip(imresize(hr, scale=0.25), 0.0, 1.0)
    planes = np.rint(np.moveaxis(lr, -1, 0) * PEAK).astype(np.uint16)
    group = zarr.open_group(str(folder / "cells.ome.zarr"), mode="w")
    write_image(
        planes,
        group,
        axes="cyx",
        fmt=FormatV05(),
        scale={"y": 0.5, "x": 0.5},
        axes_units={"y": "micrometer", "x": "micrometer"},
        scale_factors=(2,),
        storage_options={"chunks": (3, 32, 32)},
    )
    ome = dict(group.attrs["ome"])
    ome["omero"] = {
        "channels": [
            {
                "label": name,
                "color": colour,
                "window": {"min": 0, "max": PEAK, "start": 0, "end": PEAK},
            }
            for name, colour in (("red", "FF0000"), ("green", "00FF00"), ("blue", "0000FF"))
        ]
    }
    group.attrs["ome"] = ome
    return np.rint(hr * PEAK).astype(np.uint16)


def run_example(folder: Path) -> np.ndarray:
    """Run the example YAML on the input; returns level 0 as (y, x, 3) uint16, read by ome-zarr."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from pipelines.testing import run_text

    text = (REPO / "pipelines" / "examples" / "ome-zarr-upscale.yaml").read_text(encoding="utf-8")
    overrides = [f"src.path={folder}/cells.ome.zarr", f"out.path={folder}/cells_x4.ome.zarr"]
    run_text(text, overrides=overrides, entry_points=True)
    node = next(iter(Reader(parse_url(str(folder / "cells_x4.ome.zarr")))()))
    print("levels:", [tuple(d.shape) for d in node.data])
    print("scale:", [t[0]["scale"] for t in node.metadata["coordinateTransformations"]])
    return np.moveaxis(np.asarray(node.data[0]), 0, -1)


def main(argv: list[str]) -> int:
    import zarr
    from PIL import Image

    from pipelines.imresize import imresize

    out = Path(argv[0]) if argv else REPO / "docs" / "images" / "ome-zarr-x4.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hr = make_input(folder)
        result = run_example(folder)
        lr = np.moveaxis(
            zarr.open_array(str(folder / "cells.ome.zarr" / "s0"), mode="r")[...], 0, -1
        )
    to8 = lambda a: np.clip(np.rint(a.astype(np.float64) / PEAK * 255), 0, 255).astype(np.uint8)  # noqa: E731
    nearest = lr.repeat(4, axis=0).repeat(4, axis=1)
    bicubic = np.clip(imresize(lr.astype(np.float64) / PEAK, scale=4.0), 0, 1) * PEAK
    gap = np.full((hr.shape[0], 6, 3), 255, dtype=np.uint8)
    panels = [to8(nearest), gap, to8(bicubic), gap, to8(result), gap, to8(hr)]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(panels, axis=1)).save(out, quality=90)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
