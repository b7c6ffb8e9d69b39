"""The scale-changing overlap map: chunked with a halo equals the whole image, blocks stay aligned."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import stage_plugins
from helpers import random_image
from stage_plugins import ZoomParams, box_zoom

from pipelines.io.items import ImageItem, ImageMeta
from pipelines.runner.blocks import BlockPlan, aligned_axis, map_image, tiled_chunks
from pipelines.runner.tasks import StepError


def _item(image: np.ndarray, chunks: tuple[int, ...]) -> ImageItem:
    meta = ImageMeta("x", None, image.dtype.name, 1 if image.ndim == 2 else image.shape[2])
    return ImageItem(da.from_array(image, chunks=chunks), meta)


@pytest.mark.parametrize(
    ("chunks", "halo", "multiple", "expected"),
    [
        ((16, 16, 16), 4, 1, (16, 16, 16)),  # already fine
        ((16, 16, 5), 8, 1, (16, 21)),  # last block smaller than the halo: merged
        ((16, 16, 8), 8, 1, (16, 16, 8)),  # last block equal to the halo: kept
        ((15, 15, 15), 2, 2, (16, 16, 13)),  # boundaries on multiples of 2
        ((5, 5, 5, 5), 8, 1, (8, 12)),  # blocks smaller than the halo: regrown
        ((40,), 50, 1, (40,)),  # one block needs no halo
    ],
)
def test_aligned_axis(
    chunks: tuple[int, ...], halo: int, multiple: int, expected: tuple[int, ...]
) -> None:
    out = aligned_axis(chunks, halo, multiple)
    assert out == expected and sum(out) == sum(chunks)
    assert len(out) == 1 or (
        min(out) >= halo and all(b % multiple == 0 for b in np.cumsum(out[:-1]))
    )


@pytest.mark.parametrize(
    ("shape", "chunks", "radius"),
    [
        ((37, 45, 3), (16, 16, 3), 3),  # ragged edges, last row block (5) smaller than the halo
        ((37, 45, 3), (10, 7, 1), 2),  # small blocks, channels split
        ((20, 19), (20, 19), 2),  # grey, one block
        ((33, 30), (8, 30), 8),  # blocks equal to the halo
    ],
)
def test_chunked_map_equals_the_whole_image(
    shape: tuple[int, ...], chunks: tuple[int, ...], radius: int
) -> None:
    image = random_image(*shape[:2], shape[2] if len(shape) == 3 else None)
    params = ZoomParams(radius=radius)
    plan = BlockPlan(halo=radius, scale=2.0)
    out = map_image(_item(image, chunks), "zoom", "test.zoom", box_zoom, params, plan).data
    assert out.shape == (2 * shape[0], 2 * shape[1], *shape[2:])
    assert all(c % 2 == 0 for axis in out.chunks[:2] for c in axis)
    np.testing.assert_array_equal(out.compute(scheduler="threads"), box_zoom(image, params))


def test_overlap_never_rechunks_behind_our_back() -> None:
    plan = BlockPlan(halo=8, scale=2.0)
    item = _item(random_image(37, 40), (16, 16, 3))
    chunks = tiled_chunks(item.data.chunks, plan)
    out = map_image(item, "zoom", "test.zoom", box_zoom, ZoomParams(radius=8), plan).data
    assert chunks is not None
    assert out.chunks[:2] == tuple(tuple(2 * c for c in axis) for axis in chunks[:2])


def test_block_starts_follow_the_stages_multiple() -> None:
    plan = BlockPlan(halo=3, scale=2.0, multiple=4)
    out = map_image(
        _item(random_image(30, 30), (9, 9, 3)),
        "z",
        "test.zoom",
        box_zoom,
        ZoomParams(radius=3),
        plan,
    ).data
    assert all(b % 8 == 0 for axis in out.chunks[:2] for b in np.cumsum(axis[:-1]))


@pytest.mark.parametrize(
    "plan",
    [BlockPlan(halo=None, scale=2.0), BlockPlan(halo=1, scale=None), BlockPlan(halo=1, scale=1.5)],
)
def test_unknown_or_fractional_scale_runs_the_whole_image(plan: BlockPlan) -> None:
    out = map_image(
        _item(random_image(9, 9), (4, 4, 3)), "z", "test.zoom", box_zoom, ZoomParams(), plan
    ).data
    assert out.numblocks[:2] == (1, 1)


def test_a_stage_that_lies_about_its_scale_is_a_clear_error() -> None:
    plan = BlockPlan(halo=1, scale=3.0)
    out = map_image(
        _item(random_image(12, 12), (6, 6, 3)), "zoom", "test.zoom", box_zoom, ZoomParams(), plan
    ).data
    with pytest.raises(
        StepError,
        match=r"step 'zoom' \(test.zoom\): returned a 14x14 block for a 7x7 input at scale 3; expected 21x21",
    ):
        out.compute(scheduler="sync")


def test_stage_specs_carry_the_multiple() -> None:
    zoom = next(s for s in stage_plugins.register_stages() if s.id == "test.zoom")
    assert (
        zoom.multiple_for(ZoomParams(multiple=4)) == 4 and zoom.halo_for(ZoomParams(radius=2)) == 2
    )
