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


def test_foreign_host_maps_the_stage_over_a_dask_array(tmp_path: Path) -> None:
    import dask.array as da

    stages = {s.id: s for specs in _foreign_plugin_manager().hook.register_stages() for s in specs}
    upscale = stages["esrgan.upscale"]
    params = upscale.params(model=str(save_tiny(tmp_path / "t.safetensors")), tile=0, device="cpu")
    images = da.from_array(np.stack([random_image(6, 6), random_image(6, 6)]), chunks=(1, 6, 6, 3))
    scale = int(upscale.scale_for(params))
    out = images.map_blocks(
        lambda b: upscale.fn(b[0], params)[None], chunks=(1, 6 * scale, 6 * scale, 3)
    )
    result = out.compute(scheduler="threads")
    np.testing.assert_array_equal(result[1], upscale.fn(random_image(6, 6), params))
