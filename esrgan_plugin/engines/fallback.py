"""The fp16 guard: a tile whose fp16 output is non-finite or black is redone in bf16 or fp32.

fp16 has a largest value of 65504; activations beyond it become Inf, and Inf - Inf becomes NaN.
Some networks and drivers instead return an all-black image in fp16 (the "black output" problem
other ESRGAN tools document). Either way the tile is wrong, and nothing downstream can tell.
The guard checks each tile of a batch after the fp16 pass and runs only the bad ones again, in
the first fallback precision given (bf16, fp32's range at half the cost, where the device has
it; else fp32), with a one-line warning the first time it happens in a network.

A tile has *collapsed to black* when every output value is below :data:`BLACK` while its input
is not dark (its brightest value is above :data:`BRIGHT`): a network's output follows its
input's brightness, so a black output of a visible input is a failure, not content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

log = logging.getLogger(__name__)

Network = Callable[[torch.Tensor], torch.Tensor]

BLACK = 1.0 / 255
"""An output tile whose values are all below this is black."""
BRIGHT = 16.0 / 255
"""...which is a failure when its input has a value above this."""


def bad_tiles(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """A boolean per tile of an NCHW batch: output non-finite, or black for a visible input."""
    flat = outputs.detach().flatten(1)
    non_finite = ~torch.isfinite(flat).all(dim=1)
    black = flat.float().nan_to_num(0.0).amax(dim=1) < BLACK
    visible = inputs.detach().flatten(1).float().amax(dim=1) > BRIGHT
    return non_finite | (black & visible.to(black.device))


class GuardedNetwork:
    """Runs ``half`` (fp16) and redoes bad tiles with each of ``fallbacks`` in turn, as
    ``(precision name, network)``; the last fallback's result is kept whatever it is.

    ``redone`` counts the tiles redone so far (the precision measurement reads it: a precision
    that needs its fallback is not the precision that ran).
    """

    def __init__(self, half: Network, fallbacks: Sequence[tuple[str, Network]]) -> None:
        if not fallbacks:
            raise ValueError("the fp16 guard needs at least one fallback precision")
        self.half = half
        self.fallbacks = tuple(fallbacks)
        self.redone = 0
        self._warned = False

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.half(batch)
        bad = bad_tiles(batch, out)
        if not bool(bad.any()):
            return out
        out = out.float()  # a bf16 or fp32 redo must not be rounded back to fp16
        todo = bad.nonzero().flatten()
        count = int(todo.numel())
        self.redone += count
        used = self.fallbacks[-1][0]
        for i, (name, network) in enumerate(self.fallbacks):
            part = batch.index_select(0, todo.to(batch.device))
            redo = network(part).float().to(out.device)
            last = i == len(self.fallbacks) - 1
            still = torch.zeros_like(todo, dtype=torch.bool) if last else bad_tiles(part, redo)
            still = still.to(todo.device)
            out[todo[~still]] = redo[(~still).to(redo.device)]
            used, todo = name, todo[still]
            if todo.numel() == 0:
                break
        if not self._warned:
            self._warned = True
            log.warning(
                "fp16 output of %d of %d tile(s) was non-finite or black; redone in %s "
                "(later tiles are redone without a warning)",
                count,
                batch.shape[0],
                used,
            )
        return out
