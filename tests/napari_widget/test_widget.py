"""The napari widget in a real viewer: discovery through npe2, RGB, grey, multi-channel and
multiscale layers upscaled in a worker thread, the overlay geometry, cancelling, OME-Zarr output
and one-line errors. Tiny models; references are computed with the project's own upscaler."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import random_image, tiny_rrdbnet

from esrgan_plugin.models.loading import save_model
from esrgan_plugin.napari import choices, jobs

WAIT_MS = 300_000  # a loaded 2-core machine: model load, halo measurement, Dask start-up


@pytest.fixture(scope="module")
def model_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("models") / "tiny_x2.safetensors"
    save_model(path, tiny_rrdbnet(2))
    return path


def make_widget(viewer_factory: Callable[..., Any], model: Path) -> tuple[Any, Any]:
    from esrgan_plugin.napari.widget import UpscaleWidget

    viewer = viewer_factory()
    widget = UpscaleWidget(viewer)
    viewer.window.add_dock_widget(widget, name="ESRGAN upscale")
    widget.add_model(choices.file_choice(model))
    widget.precision_box.setCurrentText("fp32")
    widget.engine_box.setCurrentText("pytorch")
    return viewer, widget


def run(bot: Any, widget: Any) -> None:
    widget.run_button.click()
    bot.waitUntil(lambda: widget.worker is None and widget.run_button.isEnabled(), timeout=WAIT_MS)


def reference(model: Path, image: np.ndarray) -> np.ndarray:
    from esrgan_plugin.engines.upscalers import upscaler_for
    from esrgan_plugin.options import UpscaleParams

    params = UpscaleParams(model=str(model), precision="fp32", engine="pytorch")
    return upscaler_for(params).upscale(image)


def test_npe2_finds_the_widget_and_napari_docks_it(viewer_factory: Callable[..., Any]) -> None:
    import npe2

    manifest = npe2.PluginManifest.from_distribution("esrgan-pipelines")
    assert [w.display_name for w in manifest.contributions.widgets or []] == ["ESRGAN upscale"]
    viewer = viewer_factory()
    assert npe2.PluginManager.instance().get_manifest("esrgan-pipelines").name == manifest.name
    dock, widget = viewer.window.add_plugin_dock_widget("esrgan-pipelines", "ESRGAN upscale")
    from esrgan_plugin.napari.widget import UpscaleWidget

    assert isinstance(widget, UpscaleWidget) and widget.model_box.count() >= 2  # the catalogue


def test_rgb_layer_is_upscaled_and_overlays_the_original(
    viewer_factory: Callable[..., Any], bot: Any, model_x2: Path
) -> None:
    viewer, widget = make_widget(viewer_factory, model_x2)
    image = random_image(24, 20)
    layer = viewer.add_image(image, name="rgb", rgb=True, scale=(2.0, 3.0), translate=(5.0, -7.0))
    run(bot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()
    new = viewer.layers["rgb x2"]
    assert new.rgb and new.data.dtype == np.uint8 and new.data.shape == (48, 40, 3)
    np.testing.assert_array_equal(new.data, reference(model_x2, image))
    assert tuple(new.scale) == (1.0, 1.5)
    assert tuple(new.translate) == (5.0 + 2.0 * (0.5 - 1) / 2, -7.0 + 3.0 * (0.5 - 1) / 2)
    # the pixel edges coincide: first and last corners, and an inner input pixel's centre
    for old, upscaled in [
        ((-0.5, -0.5), (-0.5, -0.5)),
        ((23.5, 19.5), (47.5, 39.5)),
        ((3, 7), (6.5, 14.5)),
    ]:
        np.testing.assert_allclose(layer.data_to_world(old), new.data_to_world(upscaled))
    assert widget.progress.value() == widget.progress.maximum()


def test_grey_multichannel_and_float_layers(
    viewer_factory: Callable[..., Any], bot: Any, model_x2: Path
) -> None:
    viewer, widget = make_widget(viewer_factory, model_x2)
    stack = random_image(2, 18, 22, dtype=np.uint16)  # (channel, y, x): two grey planes
    viewer.add_image(stack, name="channels")
    run(bot, widget)
    upscaled = viewer.layers["channels x2"].data
    assert upscaled.shape == (2, 36, 44) and upscaled.dtype == np.uint16
    for c in range(2):
        np.testing.assert_array_equal(upscaled[c], reference(model_x2, stack[c]))

    values = random_image(16, 16, None).astype(np.float32) * 4 + 100  # 100..1120 units
    viewer.add_image(values, name="float", contrast_limits=(100, 1120))
    viewer.layers.selection.active = viewer.layers["float"]
    run(bot, widget)
    result = viewer.layers["float x2"].data
    expected = reference(model_x2, (values - 100) / 1020) * 1020 + 100
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-3)


def test_multiscale_layer_goes_through_dask_at_level_0(
    viewer_factory: Callable[..., Any], bot: Any, model_x2: Path
) -> None:
    import dask.array as da

    viewer, widget = make_widget(viewer_factory, model_x2)
    level0 = random_image(96, 80, None, dtype=np.uint16)
    levels = [
        da.from_array(level0, chunks=(32, 32)),
        da.from_array(level0[::2, ::2], chunks=(32, 32)),
    ]
    layer = viewer.add_image(levels, multiscale=True, name="pyramid", scale=(0.5, 0.25))
    seen: list[float] = []
    widget._relay.progressed.connect(seen.append)
    run(bot, widget)
    new = viewer.layers["pyramid x2"]
    assert not new.multiscale and new.data.shape == (192, 160)
    # blocks carry the measured halo: the result equals the whole image within the halo's bound
    whole = reference(model_x2, level0).astype(np.int64)
    assert np.abs(new.data.astype(np.int64) - whole).max() <= 0.5 / 255 * 65535 + 1
    assert len({round(f, 3) for f in seen}) > 3  # progress per Dask task, not one jump
    assert tuple(new.scale) == (0.25, 0.125)
    np.testing.assert_allclose(layer.data_to_world((-0.5, -0.5)), new.data_to_world((-0.5, -0.5)))


def test_cancel_stops_the_worker_and_the_viewer_stays_responsive(
    viewer_factory: Callable[..., Any], bot: Any, model_x2: Path
) -> None:
    from qtpy.QtCore import QTimer

    viewer, widget = make_widget(viewer_factory, model_x2)
    viewer.add_image(random_image(768, 768), name="big", rgb=True)
    widget.tile_box.setValue(16)  # many small tiles: a long run with progress after each
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    widget.run_button.click()
    assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    bot.waitUntil(lambda: widget.progress.value() > 0, timeout=WAIT_MS)
    progress_seen = widget.progress.value()
    ticks_seen = len(ticks)
    bot.wait(500)
    assert widget.worker is not None, "finished before it could be cancelled"
    assert len(ticks) >= ticks_seen + 5  # the event loop ran while the worker worked
    widget.cancel_button.click()
    bot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    timer.stop()
    assert widget.status.text() == "cancelled; nothing added"
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert 0 < progress_seen < widget.progress.maximum()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_ome_zarr_layer_is_written_through_the_pipeline_and_opened_lazily(
    viewer_factory: Callable[..., Any], bot: Any, model_x2: Path, tmp_path: Path
) -> None:
    import zarr
    from ome_zarr import format as ome_format
    from ome_zarr import writer as ome_writer

    source = tmp_path / "cells.ome.zarr"
    data = random_image(64, 48, None, dtype=np.uint16)
    group = zarr.open_group(str(source), mode="w", zarr_format=3)
    ome_writer.write_image(
        data, group, axes="yx", fmt=ome_format.FormatV05(), scale_factors=(2,),
        storage_options={"chunks": (32, 32)},
    )  # fmt: skip
    viewer, widget = make_widget(viewer_factory, model_x2)
    layer = _open_ome(viewer, source)
    out = tmp_path / "cells_x2.ome.zarr"
    widget.write_box.setChecked(True)
    widget.output_edit.setText(str(out))
    run(bot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()
    new = viewer.layers["cells x2"]
    assert new.multiscale and len(new.data) == 2 and new.data[0].shape == (128, 96)
    assert (out / "zarr.json").is_file()
    whole = reference(model_x2, data).astype(np.int64)
    assert np.abs(np.asarray(new.data[0]).astype(np.int64) - whole).max() <= 0.5 / 255 * 65535 + 1
    np.testing.assert_allclose(layer.data_to_world((-0.5, -0.5)), new.data_to_world((-0.5, -0.5)))


def _open_ome(viewer: Any, path: Path) -> Any:
    """The image as a reader plugin would add it: lazy levels, the path as the layer's source."""
    from napari.layers._source import layer_source

    with layer_source(path=str(path)):
        return viewer.add_image(jobs.open_ome_levels(path), multiscale=True, name="cells")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda w: w.tile_box.setValue(8), "error: tile: must be 0 (whole image) or at least 16"),
        (lambda w: w.model_box.clear(), "error: no model chosen"),
        (
            lambda w: w.write_box.setChecked(True),
            "error: img: writing OME-Zarr needs a multiscale layer",
        ),
    ],
)
def test_bad_choices_are_one_line_errors_and_run_nothing(
    viewer_factory: Callable[..., Any], model_x2: Path, setup: Any, message: str
) -> None:
    viewer, widget = make_widget(viewer_factory, model_x2)
    viewer.add_image(random_image(8, 8), name="img", rgb=True)
    setup(widget)
    widget.run_button.click()
    assert widget.worker is None and widget.status.text().startswith(message), widget.status.text()
    assert "\n" not in widget.status.text() and [layer.name for layer in viewer.layers] == ["img"]


def test_a_model_folder_offers_its_model_files(
    viewer_factory: Callable[..., Any],
    model_x2: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qtpy.QtWidgets import QFileDialog

    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("a.safetensors", "b.pth", "c.param", "notes.txt"):
        (folder / name).write_bytes(b"")
    viewer, widget = make_widget(viewer_factory, model_x2)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    widget.folder_button.click()
    values = [widget.model_box.itemData(i) for i in range(widget.model_box.count())]
    assert str(folder / "a.safetensors") in values and str(folder / "b.pth") in values
    assert str(folder / "c.param") not in values  # no .bin beside it
    assert widget.model_box.currentData() == str(folder / "a.safetensors")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(model_x2), ""))
    widget.file_button.click()
    assert widget.model_box.currentData() == str(model_x2)
