"""Training data: image sources, aligned LR/HR random crops, and a resumable batch schedule.

Sources (``sources``, ``zarr_source``: a folder with an optional paired LR folder, a Zarr array
or group, the photos inside the scikit-image wheel) read whole RGB images. ``SRDataset``
(``dataset``) turns one image into an aligned LR/HR crop pair: the LR image is made once per
image with MATLAB's bicubic ``imresize`` of the whole HR image (as pre-generated LR datasets are)
and kept in a per-process cache, then both are cropped, flipped and rotated identically.
Randomness comes only from a per-sample seed derived from (seed, iteration, slot in batch)
(``sampling``), so batches do not depend on worker processes (``loader``) or on where a run was
resumed. ``from_config`` builds all of it from an experiment file.
"""

from training.data.dataset import CropConfig, Key, SRDataset, check_lr_shape, whole_pair
from training.data.from_config import (
    load_validation_pairs,
    make_training_batches,
    source_from_config,
    validation_pairs_from_config,
)
from training.data.loader import training_batches
from training.data.pixels import downscale, mod_crop, to_float32, to_rgb
from training.data.sampling import BatchSchedule, epoch_permutation, sample_seed
from training.data.sources import (
    DEFAULT_SKIMAGE_PHOTOS,
    SKIMAGE_PHOTOS,
    ImageFolderSource,
    ImageSource,
    SkimageSource,
)
from training.data.zarr_source import PreparedZarrSource, ZarrSource, is_prepared

__all__ = [
    "DEFAULT_SKIMAGE_PHOTOS",
    "SKIMAGE_PHOTOS",
    "BatchSchedule",
    "CropConfig",
    "ImageFolderSource",
    "ImageSource",
    "PreparedZarrSource",
    "Key",
    "SRDataset",
    "SkimageSource",
    "ZarrSource",
    "check_lr_shape",
    "downscale",
    "is_prepared",
    "epoch_permutation",
    "load_validation_pairs",
    "make_training_batches",
    "mod_crop",
    "sample_seed",
    "source_from_config",
    "to_float32",
    "to_rgb",
    "training_batches",
    "validation_pairs_from_config",
    "whole_pair",
]
