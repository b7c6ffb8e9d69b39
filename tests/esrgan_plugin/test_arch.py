"""RRDBNet and SRResNet structure: shapes, scales, residual scaling, no BN, small init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esrgan_plugin.arch import RRDBNet, RRDBNetConfig, SRResNet, SRResNetConfig
from esrgan_plugin.arch.rrdbnet import ResidualDenseBlock, receptive_radius


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_output_shape_for_every_scale_and_odd_sizes(scale: int) -> None:
    net = RRDBNet(RRDBNetConfig.for_scale(scale, num_features=8, num_blocks=1, growth_channels=4))
    out = net(torch.rand(2, 3, 13, 7))
    assert out.shape == (2, 3, 13 * scale, 7 * scale)
    assert net.scale == scale


def test_pixel_unshuffle_feeds_16x_or_4x_channels() -> None:
    assert RRDBNet(RRDBNetConfig.for_scale(1, num_blocks=0)).conv_first.in_channels == 48
    assert RRDBNet(RRDBNetConfig.for_scale(2, num_blocks=0)).conv_first.in_channels == 12
    assert RRDBNet(RRDBNetConfig.for_scale(4, num_blocks=0)).conv_first.in_channels == 3


def test_paper_defaults_and_no_batch_norm() -> None:
    config = RRDBNetConfig()
    assert (config.num_features, config.growth_channels, config.num_blocks, config.scale) == (
        64,
        32,
        23,
        4,
    )
    net = RRDBNet(RRDBNetConfig(num_blocks=2))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert len(net.body) == 2 and len(list(net.body[0].children())) == 3
    block = net.body[0].rdb1
    assert [
        c.in_channels for c in (block.conv1, block.conv2, block.conv3, block.conv4, block.conv5)
    ] == [64, 96, 128, 160, 192]


def test_dense_block_residual_scaling_is_0_2() -> None:
    block = ResidualDenseBlock(4, 2)
    x = torch.rand(1, 4, 5, 5)
    with torch.no_grad():
        for conv in (block.conv1, block.conv2, block.conv3, block.conv4):
            conv.weight.zero_()
            conv.bias.zero_()
        block.conv5.weight.zero_()
        block.conv5.bias.fill_(1.0)
    torch.testing.assert_close(block(x), x + 0.2)


def test_rrdb_init_is_kaiming_scaled_by_0_1() -> None:
    torch.manual_seed(0)
    net = RRDBNet(RRDBNetConfig(num_blocks=2))
    w = net.body[0].rdb1.conv5.weight
    kaiming_std = (2.0 / (w.shape[1] * 9)) ** 0.5
    assert w.std().item() == pytest.approx(0.1 * kaiming_std, rel=0.1)
    assert net.body[0].rdb1.conv5.bias.abs().max() == 0


def test_a_meta_skeleton_is_not_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading builds the network on the meta device; initialising it there would run PyTorch's
    slow reference path (seconds for x4plus) on weights the file then replaces."""
    calls: list[torch.Tensor] = []
    monkeypatch.setattr(nn.init, "kaiming_normal_", lambda t, *a, **k: calls.append(t))
    with torch.device("meta"):
        RRDBNet(RRDBNetConfig(num_features=8, num_blocks=1, growth_channels=4))
    assert calls == []
    RRDBNet(RRDBNetConfig(num_features=8, num_blocks=1, growth_channels=4))
    assert len(calls) == 15  # the RRDB's three dense blocks of five convs each


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="scale must be one of"):
        RRDBNetConfig.for_scale(3)
    with pytest.raises(ValueError, match="unshuffle_factor"):
        RRDBNetConfig(unshuffle_factor=3)


def test_receptive_radius_bounds_influence() -> None:
    """Changing a pixel farther than the radius leaves the output pixel unchanged."""
    config = RRDBNetConfig(num_features=4, num_blocks=1, growth_channels=2)
    net = RRDBNet(config).eval()
    radius = receptive_radius(config)
    size = 2 * radius + 5
    x = torch.rand(1, 3, size, size)
    y = x.clone()
    y[..., :, radius + 2 + radius + 1 :] = 0.0  # columns beyond radius of column radius+2
    with torch.no_grad():
        a, b = net(x), net(y)
    col = (radius + 2) * 4
    torch.testing.assert_close(a[..., col], b[..., col])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_srresnet_shapes_and_bn_switch(batch_norm: bool) -> None:
    net = SRResNet(SRResNetConfig(num_features=8, num_blocks=16, batch_norm=batch_norm))
    assert len(net.body) == 16
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert has_bn is batch_norm
    assert net.eval()(torch.rand(1, 3, 6, 5)).shape == (1, 3, 24, 20)
