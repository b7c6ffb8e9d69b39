"""Endless collated batches through a DataLoader, with worker errors raised as one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from training.data.dataset import Key, SRDataset
from training.data.sampling import BatchSchedule
from training.errors import TrainingError


@dataclass(frozen=True)
class _Failure:
    """A worker's TrainingError, carried back so the main process raises it as a one-line error."""

    message: str


class _SafeDataset(Dataset[Any]):
    """Wraps an SRDataset so that TrainingErrors become ``_Failure`` values instead of tracebacks."""

    def __init__(self, dataset: SRDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor] | _Failure:
        try:
            return self.dataset[key]
        except TrainingError as exc:
            return _Failure(str(exc))

    def __len__(self) -> int:
        return len(self.dataset)


def _collate(
    samples: list[dict[str, torch.Tensor] | _Failure],
) -> dict[str, torch.Tensor] | _Failure:
    """Stack samples into a batch, or pass the first failure through."""
    for sample in samples:
        if isinstance(sample, _Failure):
            return sample
    return default_collate(samples)


def training_batches(
    dataset: SRDataset,
    batch_size: int,
    seed: int,
    start_iteration: int = 0,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless collated batches {"lr", "hr"} for iterations start_iteration, start_iteration + 1, ...

    ``num_workers`` > 0 loads in that many persistent worker processes; the batches are the same
    either way (each worker runs one torch thread). ``pin_memory`` defaults to whether CUDA is
    available. With ``world_size`` ranks this rank gets its share of every global batch.
    """
    if num_workers < 0:
        raise TrainingError(f"num_workers must be >= 0, got {num_workers}")
    schedule = BatchSchedule(len(dataset), batch_size, seed, start_iteration, rank, world_size)
    loader = DataLoader(
        _SafeDataset(dataset),
        batch_sampler=schedule,
        num_workers=num_workers,
        collate_fn=_collate,
        persistent_workers=num_workers > 0,
        worker_init_fn=_one_thread if num_workers > 0 else None,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
    )
    return _raise_failures(iter(loader))


def _one_thread(worker_id: int) -> None:
    """A loader worker uses one torch thread: the training process owns the cores."""
    torch.set_num_threads(1)


def _raise_failures(batches: Iterator[Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Yield batches, raising a carried-back failure as a TrainingError."""
    for batch in batches:
        if isinstance(batch, _Failure):
            break
        yield batch
    else:
        return
    del batches  # stop the worker processes now, not when the traceback is garbage-collected
    raise TrainingError(batch.message)
