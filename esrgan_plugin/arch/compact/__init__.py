"""SRVGGNetCompact, Real-ESRGAN's small generator: network, checkpoint layout and descriptor."""

from esrgan_plugin.arch.compact import keys, ncnn
from esrgan_plugin.arch.compact.network import CompactConfig, SRVGGNetCompact, receptive_radius
from esrgan_plugin.arch.descriptor import Architecture, ModelNeeds


def needs(config: CompactConfig) -> ModelNeeds:
    """Scale, receptive radius and width of an SRVGGNetCompact (any input size)."""
    return ModelNeeds(
        scale=config.scale,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        multiple_of=1,
        receptive_radius=receptive_radius(config),
        feature_channels=config.num_features,
    )


ARCHITECTURE = Architecture(
    name="SRVGGNetCompact",
    module_class=SRVGGNetCompact,
    config_class=CompactConfig,
    layouts=keys.LAYOUTS,
    read_config=keys.read_config,
    needs=needs,
    shape_keys=r"body\.0\.weight$",
    count_parameters=keys.count_parameters,
    match_ncnn=ncnn.match_ncnn,
)

__all__ = ["ARCHITECTURE", "CompactConfig", "SRVGGNetCompact", "receptive_radius"]
