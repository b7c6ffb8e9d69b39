"""The VGG-style discriminator of SRGAN/ESRGAN: a strided conv stack with BN and two linear layers.

For a 128x128 input: conv0_0 (3x3, bias) + LeakyReLU, conv0_1 (4x4 stride 2) + BN + LeakyReLU,
then stages of (3x3 stride 1, 4x4 stride 2) convs with BN, doubling channels up to 8 * num_feat,
until the map is 4x4; then linear(8 * num_feat * 16 -> 100) + LeakyReLU + linear(100 -> 1).
A 256x256 input adds one more stride-2 stage. It outputs one raw logit C(x) per image (N, 1), to be
used with the relativistic losses in ``training.losses``. Parameter names (``conv{i}_{j}``,
``bn{i}_{j}``, ``linear1``, ``linear2``) follow BasicSR's layout so its checkpoints load.
"""

from __future__ import annotations

from torch import Tensor, nn

NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope used after every layer but the last."""

_HIDDEN = 100
"""Width of the hidden linear layer."""

_FINAL_SIZE = 4
"""Spatial size of the last feature map, whatever the input size."""

_STAGE_CHANNEL_MULTIPLIERS: dict[int, tuple[int, ...]] = {
    # input size: output-channel multiplier (of num_feat) of stages 1..n, each halving the size
    128: (2, 4, 8, 8),
    256: (2, 4, 8, 8, 8),
}


class VGGStyleDiscriminator(nn.Module):
    """SRGAN/ESRGAN discriminator for ``input_size`` x ``input_size`` images (128 or 256).

    BN is fine here (only the generator drops it). ``forward`` returns raw logits of shape (N, 1).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in _STAGE_CHANNEL_MULTIPLIERS:
            raise ValueError(f"input_size must be 128 or 256, got {input_size}")
        if num_in_ch < 1 or num_feat < 1:
            raise ValueError(f"num_in_ch and num_feat must be >= 1, got {num_in_ch} and {num_feat}")
        self.num_in_ch = num_in_ch
        self.input_size = input_size
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        self.num_stages = len(_STAGE_CHANNEL_MULTIPLIERS[input_size])
        in_ch = num_feat
        for stage, multiplier in enumerate(_STAGE_CHANNEL_MULTIPLIERS[input_size], start=1):
            out_ch = num_feat * multiplier
            self._add_stage(stage, in_ch, out_ch)
            in_ch = out_ch
        self.linear1 = nn.Linear(in_ch * _FINAL_SIZE * _FINAL_SIZE, _HIDDEN)
        self.linear2 = nn.Linear(_HIDDEN, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=NEGATIVE_SLOPE, inplace=True)

    def _add_stage(self, stage: int, in_ch: int, out_ch: int) -> None:
        """Register conv{stage}_0 (3x3, in->out) and conv{stage}_1 (4x4 stride 2), each with BN."""
        self.add_module(f"conv{stage}_0", nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False))
        self.add_module(f"bn{stage}_0", nn.BatchNorm2d(out_ch, affine=True))
        self.add_module(f"conv{stage}_1", nn.Conv2d(out_ch, out_ch, 4, 2, 1, bias=False))
        self.add_module(f"bn{stage}_1", nn.BatchNorm2d(out_ch, affine=True))

    def _check_input(self, x: Tensor) -> None:
        """Reject inputs of the wrong rank, channel count or spatial size with a one-line message."""
        if x.ndim != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(
                f"discriminator expects (N, {self.num_in_ch}, H, W) inputs, got shape {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if (height, width) != (self.input_size, self.input_size):
            size = self.input_size
            raise ValueError(f"discriminator expects {size}x{size} inputs, got {height}x{width}")

    def forward(self, x: Tensor) -> Tensor:
        """Return one raw logit C(x) per image, shape (N, 1)."""
        self._check_input(x)
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for stage in range(1, self.num_stages + 1):
            for j in (0, 1):
                conv = getattr(self, f"conv{stage}_{j}")
                bn = getattr(self, f"bn{stage}_{j}")
                feat = self.lrelu(bn(conv(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)
