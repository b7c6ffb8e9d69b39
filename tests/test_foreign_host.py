"""A foreign host: finds the ESRGAN plugin with only pluggy and importlib.metadata, then uses it.

No part of our runner or plugin-manager factory is used: this is the contract documented in
docs/pipelines.md, "Loading the plugin from your own host".
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pluggy
from helpers import random_image, save_tiny

GROUP = "pipelines"


def _foreign_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    for entry_point in importlib.metadata.entry_points(group=GROUP):
        if entry_point.name == "esrgan":
            pm.register(entry_point.load(), name=entry_point.name)
    return pm


def test_foreign_host_discovers_lists_and_calls_the_plugin(tmp_path: Path) -> None:
    pm = _foreign_plugin_manager()
    assert pm.has_plugin("esrgan")
    stages = {spec.id: spec for specs in pm.hook.register_stages() for spec in specs}
    assert {"esrgan.upscale", "esrgan.interpolate"} <= set(stages)

    upscale = stages["esrgan.upscale"]
    schema = upscale.params.model_json_schema()
    assert "model" in schema["properties"] and upscale.description
    assert (upscale.consumes, upscale.produces) == ("images", "images")

    model = save_tiny(tmp_path / "tiny.safetensors")
    params = upscale.params(model=str(model), tile=0, device="cpu")
    image = random_image(7, 6)
    out = upscale.fn(image, params)
    assert out.shape == (28, 24, 3) and out.dtype == np.uint8
    assert upscale.scale_for(params) == 4.0 and upscale.halo_for(params) >= 0

    grey16 = random_image(5, 4, None, dtype=np.uint16)
    assert upscale.fn(grey16, params).dtype == np.uint16


def test_foreign_host_maps_the_stage_over_a_dask_array_with_map_stage(tmp_path: Path) -> None:
    """``pipelines.api.map_stage`` tiles the stage with its halo: real seams are possible here
    (the image is several chunks wide), yet the result equals the whole-image call."""
    import dask.array as da

    from pipelines.api import StageSpec, map_stage

    stages = {s.id: s for specs in _foreign_plugin_manager().hook.register_stages() for s in specs}
    upscale = stages["esrgan.upscale"]
    assert isinstance(upscale, StageSpec)
    params = {"model": str(save_tiny(tmp_path / "t.safetensors")), "tile": 0, "device": "cpu"}
    image = random_image(100, 76)
    lazy = da.from_array(image, chunks=(20, 16, 3))
    out = map_stage(lazy, upscale, params)
    assert min(out.numblocks[:2]) >= 3  # blocks grown to the halo, not merged into one
    whole = map_stage(image, upscale, params)
    assert whole.shape == (400, 304, 3)
    diff = np.abs(out.compute(scheduler="threads").astype(int) - whole.astype(int))
    assert diff.max() <= 1


def test_map_stage_without_halo_shows_seams(tmp_path: Path) -> None:
    """The same map with the halo forced to 0 differs from the whole image: the test above can fail."""
    import dataclasses

    import dask.array as da

    from pipelines.api import map_stage

    stages = {s.id: s for specs in _foreign_plugin_manager().hook.register_stages() for s in specs}
    no_halo = dataclasses.replace(stages["esrgan.upscale"], halo=0)
    params = {"model": str(save_tiny(tmp_path / "t.safetensors")), "tile": 0, "device": "cpu"}
    image = random_image(70, 52)
    tiled = map_stage(da.from_array(image, chunks=(20, 16, 3)), no_halo, params).compute()
    assert np.abs(tiled.astype(int) - map_stage(image, no_halo, params).astype(int)).max() > 1


def test_map_stage_refuses_bad_parameters_in_one_line(tmp_path: Path) -> None:
    import pytest

    from pipelines.api import PipelineError, map_stage

    stages = {s.id: s for specs in _foreign_plugin_manager().hook.register_stages() for s in specs}
    with pytest.raises(PipelineError, match=r"esrgan.upscale: tile") as info:
        map_stage(random_image(8, 8), stages["esrgan.upscale"], {"tile": "big"})
    assert "\n" not in str(info.value)
