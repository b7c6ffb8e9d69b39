"""Training data throughput: samples/s the loader sustains from a prepared Zarr store against raw
PNG folders, with N loader workers, on DIV2K-sized images (2040 x 1356).

Every configuration draws the same batches (128 x 128 HR crops, x4, flips and rotations) through
``training_batches`` with the per-process cache off, which is what DIV2K's 800 images (about 7 GB
decoded with their LR) look like to a 2 GB cache. Runs are interleaved; the table shows medians.

    python bench/bench_data.py [--images 8] [--repeats 3] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_models import cpu_line  # noqa: E402

from pipelines.imresize import imresize  # noqa: E402
from pipelines.io.images import write_image  # noqa: E402
from training.data import (  # noqa: E402
    CropConfig,
    ImageFolderSource,
    PreparedZarrSource,
    SRDataset,
    training_batches,
)
from training.prepare import prepare_dataset  # noqa: E402
from training.prepare_options import PrepareOptions  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera")
SIZE = (1356, 2040)  # DIV2K's usual HR size (height, width)
BATCH = 8


def make_images(folder: Path, count: int) -> tuple[Path, Path]:
    """``count`` textured 2040 x 1356 PNGs (photos enlarged, with noise) and their x4 LR PNGs."""
    rng = np.random.default_rng(0)
    hr_dir, lr_dir = folder / "hr", folder / "lr"
    for i in range(count):
        photo = np.asarray(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])())
        if photo.ndim == 2:
            photo = np.repeat(photo[:, :, None], 3, axis=2)
        big = cv2.resize(photo[:, :, :3], SIZE[::-1], interpolation=cv2.INTER_CUBIC)
        noisy = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        write_image(hr_dir / f"{i:04d}.png", noisy)
        write_image(lr_dir / f"{i:04d}.png", imresize(noisy, output_shape=(339, 510)))
    return hr_dir, lr_dir


def samples_per_s(dataset: SRDataset, workers: int, batches: int) -> float:
    """Samples/s over the first ``batches`` batches, loader start-up included (it is small)."""
    started = time.perf_counter()
    stream: Iterator[dict[str, torch.Tensor]] = training_batches(
        dataset, BATCH, seed=1, num_workers=workers, pin_memory=False
    )
    for _ in range(batches):
        next(stream)
    seconds = time.perf_counter() - started
    del stream
    return batches * BATCH / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    crops = CropConfig(scale=4, hr_size=128, cache_mb=0)
    with tempfile.TemporaryDirectory() as tmp:
        hr_dir, lr_dir = make_images(Path(tmp), args.images)
        started = time.perf_counter()
        manifest = prepare_dataset(hr_dir, Path(tmp) / "data.zarr", PrepareOptions())
        prepare_s = time.perf_counter() - started
        datasets = {
            "raw HR PNG folder (LR by imresize per sample)": (
                SRDataset(ImageFolderSource(hr_dir), crops),
                1,
            ),
            "raw HR + LR PNG folders": (
                SRDataset(ImageFolderSource(hr_dir, lr_root=lr_dir), crops),
                4,
            ),
            "prepared Zarr (480 sub-images, step 240)": (
                SRDataset(PreparedZarrSource(Path(tmp) / "data.zarr"), crops),
                30,
            ),
        }
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for name, (dataset, batches) in datasets.items():
                for workers in args.workers:
                    rate = samples_per_s(dataset, workers, batches)
                    results.setdefault((name, workers), []).append(rate)
    print(
        f"#### Training loader throughput, {args.images} images of 2040x1356, batch {BATCH}, "
        f"128x128 HR crops x4, cache off, first batches from loader start, median of {args.repeats}\n"
    )
    print(f"CPU: {cpu_line()} (1 torch thread per process; the machine is shared and noisy)\n")
    print(
        f"Preparing the Zarr store: {manifest['count']} sub-image pairs in {prepare_s:.1f} s "
        "(threads)\n"
    )
    print("| source | loader workers | samples/s | vs raw HR folder, same workers |")
    print("| --- | ---: | ---: | ---: |")
    raw = next(iter(datasets))
    for (name, workers), rates in results.items():
        median = statistics.median(rates)
        ratio = median / statistics.median(results[(raw, workers)])
        print(f"| {name} | {workers} | {median:,.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
