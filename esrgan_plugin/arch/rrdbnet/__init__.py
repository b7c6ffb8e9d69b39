"""RRDBNet, the ESRGAN generator: the network, its checkpoint layouts and its descriptor."""

import functools

from esrgan_plugin.arch.descriptor import Architecture, ModelNeeds
from esrgan_plugin.arch.rrdbnet import keys, ncnn
from esrgan_plugin.arch.rrdbnet.network import (
    NEGATIVE_SLOPE,
    RESIDUAL_SCALE,
    RRDB,
    ResidualDenseBlock,
    RRDBNet,
    RRDBNetConfig,
    initialize_weights,
    pad_to_multiple,
    receptive_radius,
)


def needs(config: RRDBNetConfig) -> ModelNeeds:
    """Scale, unshuffle multiple, receptive radius and trunk width of an RRDBNet."""
    return ModelNeeds(
        scale=config.scale,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        multiple_of=config.unshuffle_factor,
        receptive_radius=receptive_radius(config),
        feature_channels=config.num_features,
    )


ARCHITECTURE = Architecture(
    name="RRDBNet",
    module_class=RRDBNet,
    config_class=RRDBNetConfig,
    layouts=keys.LAYOUTS,
    read_config=keys.read_config,
    needs=needs,
    shape_keys=r"(conv_first|conv_last|body\.0\.rdb1\.conv1)\.weight$",
    count_parameters=keys.count_parameters,
    match_ncnn=ncnn.match_ncnn,
    inference_forward=lambda module: functools.partial(module, tail_strips=True),
)

__all__ = [
    "ARCHITECTURE",
    "NEGATIVE_SLOPE",
    "RESIDUAL_SCALE",
    "RRDB",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "initialize_weights",
    "pad_to_multiple",
    "receptive_radius",
]
