"""SRResNet, the paper's BN-removal baseline: network, checkpoint layout and descriptor."""

from esrgan_plugin.arch.descriptor import Architecture, ModelNeeds
from esrgan_plugin.arch.srresnet import keys
from esrgan_plugin.arch.srresnet.network import ResidualBlock, SRResNet, SRResNetConfig


def needs(config: SRResNetConfig) -> ModelNeeds:
    """Scale, receptive radius and width of an SRResNet (any input size)."""
    return ModelNeeds(
        scale=config.scale,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        multiple_of=1,
        receptive_radius=2 * config.num_blocks + 4,
        feature_channels=config.num_features,
    )


ARCHITECTURE = Architecture(
    name="SRResNet",
    module_class=SRResNet,
    config_class=SRResNetConfig,
    layouts=keys.LAYOUTS,
    read_config=keys.read_config,
    needs=needs,
    shape_keys=r"(conv_first|conv_last|upsample\.\d+)\.weight$",
)

__all__ = ["ARCHITECTURE", "ResidualBlock", "SRResNet", "SRResNetConfig"]
