"""The resumable batch schedule: every sample's image and seed from (seed, iteration, slot)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from training.data.dataset import Key
from training.errors import TrainingError


def sample_seed(seed: int, iteration: int, slot: int) -> int:
    """The seed of one sample's crop and augmentation, from (seed, iteration, slot in batch) only."""
    return int(np.random.SeedSequence([seed, 1, iteration, slot]).generate_state(1, np.uint64)[0])


def epoch_permutation(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the images."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0, epoch])).permutation(num_images)


class BatchSchedule:
    """Infinite batches of (image index, sample seed) keys, starting at ``start_iteration``.

    Sample ``j`` of iteration ``i`` is the ``(i * batch_size + j)``-th draw of an endless walk
    through per-epoch permutations, so any iteration's keys can be computed directly: a resumed
    run draws exactly what an uninterrupted one would. ``batch_size`` is the global batch: with
    ``world_size`` ranks, rank ``r`` draws slots ``[r * b, (r + 1) * b)`` (``b = batch_size /
    world_size``), so the ranks' shares are disjoint and together make the 1-rank batch.
    """

    def __init__(
        self,
        num_images: int,
        batch_size: int,
        seed: int,
        start_iteration: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_images < 1:
            raise TrainingError("the training source holds no images")
        if batch_size < 1:
            raise TrainingError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0 or start_iteration < 0:
            raise TrainingError(
                f"seed and start_iteration must be >= 0, got {seed} and {start_iteration}"
            )
        if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
            raise TrainingError(
                f"batch_size {batch_size} must split evenly over {world_size} ranks (rank {rank})"
            )
        self.rank = rank
        self.world_size = world_size
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = seed
        self.start_iteration = start_iteration
        self._permutation: tuple[int, np.ndarray] | None = None

    def keys(self, iteration: int) -> list[Key]:
        """The (image index, sample seed) pairs of this rank's share of ``iteration``'s batch."""
        first = iteration * self.batch_size
        per_rank = self.batch_size // self.world_size
        slots = range(self.rank * per_rank, (self.rank + 1) * per_rank)
        return [
            (self._image_at(first + slot), sample_seed(self.seed, iteration, slot))
            for slot in slots
        ]

    def _image_at(self, position: int) -> int:
        """Image index of the ``position``-th draw overall."""
        epoch, offset = divmod(position, self.num_images)
        if self._permutation is None or self._permutation[0] != epoch:
            self._permutation = (epoch, epoch_permutation(self.seed, epoch, self.num_images))
        return int(self._permutation[1][offset])

    def __iter__(self) -> Iterator[list[Key]]:
        """Batches for iterations start_iteration, start_iteration + 1, ..."""
        iteration = self.start_iteration
        while True:
            yield self.keys(iteration)
            iteration += 1
