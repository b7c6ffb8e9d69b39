"""The geometric self-ensemble (``tta``): eight flips and rotations, undone and averaged.

As in EDSR+ and RCAN+ (Lim et al. 2017, Zhang et al. 2018): the network runs on the eight
images of the dihedral group of the square (four rotations by 90 degrees, each with and without a
horizontal flip), each output is transformed back, and the eight are averaged. The spread of the
eight outputs is also how unsure the network is of each pixel (:mod:`esrgan_plugin.uncertainty`).

The ensemble wraps a :data:`~esrgan_plugin.engines.base.Network` (a function on NCHW tiles), so
it applies **per tile**: every tile, and every Dask block, is its own eight-pass average. Rotations
and flips move no pixel further from any other, so the ensemble's receptive radius is the
network's, and a tile with the network's halo matches the whole image's ensemble as closely as a
plain tile matches the plain network (within the halo's error bound, ``HALO_BOUND``). The
alternative, transforming the whole image and tiling each of the eight, gives the same pixels but
cannot run on Dask blocks; per tile, one method serves whole images, tiles and blocks alike.

A network that pixel-unshuffles its input (x1, x2 models: ``multiple`` > 1) groups pixels
from the top-left corner. Flipping a tile of odd size would group it from the other corner, so
each tile is first reflect-padded at its bottom and right to the multiple, exactly as the network
pads itself, which keeps every pass's grouping equal to the whole image's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from esrgan_plugin.arch.rrdbnet import pad_to_multiple

Network = Callable[[torch.Tensor], torch.Tensor]

PASSES = 8
"""The dihedral group of the square: four rotations, each with and without a flip."""

TRANSFORMS: tuple[tuple[int, bool], ...] = tuple(
    (k, flip) for flip in (False, True) for k in range(4)
)
"""(quarter turns, horizontal flip) per pass; the first is the identity."""


def forward_transform(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Flip (last axis) then rotate by ``turns`` quarter turns, on the last two axes."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def inverse_transform(y: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Undo :func:`forward_transform` (rotate back, then flip)."""
    if turns:
        y = torch.rot90(y, -turns, dims=(-2, -1))
    return y.flip(-1) if flip else y


class SelfEnsemble:
    """A network's x8 self-ensemble: called, the average of the eight passes (clamped to [0, 1]).

    ``multiple`` is the network's pixel-unshuffle factor (1 for most x4 models).
    """

    def __init__(self, network: Network, multiple: int = 1) -> None:
        self.network = network
        self.multiple = multiple

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        mean, _spread = self.passes(batch, average=True, spread=False)
        return mean

    def with_spread(self, batch: torch.Tensor, average: bool = True) -> torch.Tensor:
        """The output (the average, or the identity pass when not ``average``) with one more
        channel: the standard deviation over the eight passes, averaged over channels."""
        out, spread = self.passes(batch, average=average, spread=True)
        assert spread is not None
        return torch.cat([out, spread], dim=1)

    def passes(
        self, batch: torch.Tensor, average: bool, spread: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the eight passes on an NCHW batch; returns (output, spread or None).

        Each pass's output is clamped to [0, 1] (what an image shows) before it is averaged;
        mean and variance are accumulated with Welford's update (no catastrophic cancellation
        for the small spreads that matter).
        """
        height, width = batch.shape[-2:]
        padded = pad_to_multiple(batch, self.multiple) if self.multiple > 1 else batch
        mean: torch.Tensor | None = None
        m2: torch.Tensor | None = None
        first: torch.Tensor | None = None
        for count, (turns, flip) in enumerate(TRANSFORMS, start=1):
            out = self.network(forward_transform(padded, turns, flip))
            out = inverse_transform(out.float(), turns, flip).clamp_(0.0, 1.0)
            if mean is None:
                first = out
                mean = out.clone()
                m2 = torch.zeros_like(out) if spread else None
                continue
            delta = out - mean
            mean += delta / count
            if m2 is not None:
                m2 += delta * (out - mean)
        assert mean is not None and first is not None
        scale = mean.shape[-2] // padded.shape[-2]
        crop = (..., slice(0, height * scale), slice(0, width * scale))
        result = (mean if average else first)[crop]
        if m2 is None:
            return result, None
        std = (m2[crop] / PASSES).clamp_(min=0.0).sqrt_().mean(dim=1, keepdim=True)
        return result, std
