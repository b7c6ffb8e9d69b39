"""Helpers for testing plugins against the host without installing them (pytest-friendly).

::

    from pipelines.testing import run_text, stage_registry

    def test_my_stage(tmp_path):
        assert "mine.sharpen" in stage_registry(my_plugin).ids()
        summary = run_text(f'''
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in.png"}}}}
          - {{id: fx, uses: mine.sharpen}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.png"}}}}
        ''', my_plugin)
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import TextIO

import numpy as np
import pluggy

from pipelines.config.loader import apply_overrides, parse_config
from pipelines.config.schema import Pipeline
from pipelines.hooks.manager import build_registry, get_plugin_manager
from pipelines.io.items import ImageItem, ImageMeta, channels_of
from pipelines.runner.registry import StageRegistry, StageSpec
from pipelines.runner.summary import RunSummary


def plugin_manager(
    *plugins: object, builtin: bool = True, entry_points: bool = False
) -> pluggy.PluginManager:
    """A plugin manager with the built-in stages and ``plugins``; installed plugins only if asked."""
    return get_plugin_manager(plugins, builtin=builtin, entry_points=entry_points)


def stage_registry(
    *plugins: object, builtin: bool = True, entry_points: bool = False
) -> StageRegistry:
    """The registry those plugins produce (duplicate ids raise as in a real run)."""
    return build_registry(plugin_manager(*plugins, builtin=builtin, entry_points=entry_points))


def validate_text(
    text: str,
    *plugins: object,
    overrides: Sequence[str] = (),
    file: str = "test.yaml",
    entry_points: bool = False,
) -> Pipeline:
    """Parse and validate a pipeline given as YAML text (dedented)."""
    from pipelines.config.validation import validate

    raw = apply_overrides(parse_config(textwrap.dedent(text), file), overrides)
    return validate(raw, stage_registry(*plugins, entry_points=entry_points))


def run_text(
    text: str,
    *plugins: object,
    overrides: Sequence[str] = (),
    entry_points: bool = False,
    progress: TextIO | None = None,
) -> RunSummary:
    """Validate and run a pipeline given as YAML text with ``plugins`` registered."""
    from pipelines.config.validation import validate
    from pipelines.runner.run import run_pipeline

    pm = plugin_manager(*plugins, entry_points=entry_points)
    raw = apply_overrides(parse_config(textwrap.dedent(text), "test.yaml"), overrides)
    return run_pipeline(validate(raw, build_registry(pm)), pm, progress)


def image_item(array: np.ndarray, name: str = "image", source: str | None = None) -> ImageItem:
    """Wrap a NumPy image as a pipeline image (one chunk), e.g. to test a sink directly."""
    import dask.array as da

    array = np.asarray(array)
    meta = ImageMeta(name, source, array.dtype.name, channels_of(array.shape))
    return ImageItem(da.from_array(array, chunks=array.shape), meta)


def documentation_problems(specs: Iterable[StageSpec]) -> list[str]:
    """Stages or parameters without a description (the generated reference would be empty)."""
    problems = []
    for spec in specs:
        if not spec.description.strip():
            problems.append(f"{spec.id}: no description")
        for name, field in spec.params.model_fields.items():
            if not (field.description or "").strip():
                problems.append(f"{spec.id}: parameter {name!r} has no description")
    return problems
