"""The VGG-style discriminator: output shape, input-size checks, gradients, parameter layout."""

from __future__ import annotations

import pytest
import torch

from training.discriminator import VGGStyleDiscriminator


@pytest.mark.parametrize("size", [128, 256])
def test_output_is_one_logit_per_image(size: int) -> None:
    net = VGGStyleDiscriminator(num_feat=8, input_size=size)
    out = net(torch.rand(2, 3, size, size))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()


def test_layout_matches_the_paper_defaults() -> None:
    net = VGGStyleDiscriminator()
    assert net.linear1.in_features == 64 * 8 * 4 * 4
    assert net.linear2.out_features == 1
    assert net.conv0_0.bias is not None and net.conv0_1.bias is None
    assert net.conv4_1.out_channels == 512 and not hasattr(net, "conv5_0")
    assert hasattr(VGGStyleDiscriminator(num_feat=8, input_size=256), "conv5_1")


def test_wrong_input_size_is_a_clear_error() -> None:
    net = VGGStyleDiscriminator(num_feat=8)
    with pytest.raises(ValueError, match="expects 128x128 inputs, got 96x96"):
        net(torch.rand(1, 3, 96, 96))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.rand(1, 1, 128, 128))
    with pytest.raises(ValueError, match="128 or 256"):
        VGGStyleDiscriminator(input_size=64)


def test_every_parameter_gets_a_gradient() -> None:
    net = VGGStyleDiscriminator(num_in_ch=1, num_feat=8)
    net(torch.rand(2, 1, 128, 128)).sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
