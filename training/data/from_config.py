"""Sources, batches and validation pairs as an experiment config describes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from training.data.dataset import CropConfig, SRDataset, whole_pair
from training.data.loader import training_batches
from training.data.sources import ImageFolderSource, ImageSource, SkimageSource
from training.data.zarr_source import PreparedZarrSource, ZarrSource, is_prepared
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.config import SourceSection, TrainConfig


def load_validation_pairs(source: ImageSource, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole (LR, HR) images for PSNR/SSIM: HR cropped to a multiple of ``scale``, LR by ``imresize``.

    Samples keep the source's type (uint8 for 8-bit files) so metrics match the usual uint8
    evaluation; paired LR files are used as they are when the source has them.
    """
    if scale < 1:
        raise TrainingError(f"scale must be a positive integer, got {scale}")
    pairs = []
    for index in range(len(source)):
        hr, lr = whole_pair(source, index, scale)
        pairs.append((lr, hr))
    return pairs


# --------------------------------------------------------------------------- from a config


def source_from_config(section: SourceSection, config: TrainConfig) -> ImageSource:
    """The image source a config section describes (paths relative to the config file)."""
    if section.kind == "skimage":
        return SkimageSource(section.names)
    assert section.path is not None  # the config validates this
    if section.kind == "zarr":
        path = config.resolve(section.path)
        return PreparedZarrSource(path) if is_prepared(path) else ZarrSource(path)
    lr_root = None if section.lr_path is None else config.resolve(section.lr_path)
    return ImageFolderSource(config.resolve(section.path), lr_root=lr_root)


def make_training_batches(
    config: TrainConfig, start_iteration: int = 0, rank: int = 0, world_size: int = 1
) -> Iterator[dict[str, torch.Tensor]]:
    """``training_batches`` for an experiment's data section, seed and scale (this rank's share)."""
    crops = CropConfig(scale=config.model.scale, hr_size=config.data.hr_size)
    dataset = SRDataset(source_from_config(config.data.train, config), crops)
    return training_batches(
        dataset,
        config.data.batch_size,
        config.seed,
        start_iteration,
        config.data.num_workers,
        rank=rank,
        world_size=world_size,
    )


def validation_pairs_from_config(config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """``load_validation_pairs`` for an experiment's validation source (empty when it has none)."""
    if config.data.validation is None:
        return []
    return load_validation_pairs(
        source_from_config(config.data.validation, config), config.model.scale
    )
