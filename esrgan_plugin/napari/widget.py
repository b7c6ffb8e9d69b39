"""The napari dock widget: upscale the selected image layer with an ESRGAN-family model.

The model comes from the catalogue (installed entries), a folder of model files or a file;
tile, precision and engine are the ``esrgan upscale`` options. The work runs in a worker thread
(napari's ``thread_worker``), so the viewer stays responsive; a progress bar follows tiles,
Dask tasks or the pipeline's progress line, and Cancel stops at the next one. The new layer
gets the scale and translate that make it overlay the original exactly
(:func:`esrgan_plugin.napari.jobs.upscaled_geometry`). What is run for which layer is in
:mod:`esrgan_plugin.napari.jobs`.
"""

from __future__ import annotations

import sys
import threading
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from esrgan_plugin.napari import choices, jobs

if TYPE_CHECKING:
    import napari

PROGRESS_STEPS = 1000
TILE_STEP = 16
MAX_TILE = 8192


class _Relay(QObject):
    """Carries progress from the worker thread to the widget (a queued Qt connection)."""

    progressed = Signal(float)


def keep_triton_out() -> bool:
    """Keep Triton from loading when Mesa's LLVM is already in the process; True if it did.

    With Mesa's software OpenGL (llvmpipe: virtual machines, remote desktops, Xvfb) napari's
    canvas maps Mesa's libLLVM into the process, and importing Triton (which ``torch._dynamo``
    does, e.g. when a model is built on the meta device) then crashes the process: two LLVMs.
    Marking Triton as absent makes torch run without it (our inference does not use it); with
    a vendor OpenGL driver, or when Triton loaded first, nothing is changed.
    """
    if "triton" in sys.modules:
        return False
    try:
        mapped = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no Mesa LLVM clash to avoid
        return False
    if "libLLVM" not in mapped:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # import triton -> ImportError
    return True


class UpscaleWidget(QWidget):
    """Layer, model, tile, precision, engine, optional OME-Zarr output; Upscale and Cancel."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        keep_triton_out()
        self.viewer = napari_viewer
        self.worker: Any = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._relay.progressed.connect(self._show_progress)

        self.layer_box = QComboBox()
        self.model_box = QComboBox()
        self.file_button = QPushButton("File…")
        self.folder_button = QPushButton("Folder…")
        self.tile_box = QSpinBox()
        self.tile_box.setRange(0, MAX_TILE)
        self.tile_box.setSingleStep(TILE_STEP)
        self.tile_box.setSpecialValueText("auto")
        self.precision_box = QComboBox()
        self.engine_box = QComboBox()
        self.write_box = QCheckBox("write the result to OME-Zarr (multiscale layers)")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("out.ome.zarr")
        self.output_edit.setEnabled(False)
        self.run_button = QPushButton("Upscale")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._fill_options()
        self._layout()

        self.file_button.clicked.connect(self.choose_file)
        self.folder_button.clicked.connect(self.choose_folder)
        self.write_box.toggled.connect(self.output_edit.setEnabled)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        for event in ("inserted", "removed", "moved", "changed"):
            getattr(self.viewer.layers.events, event).connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._select_active)
        self._refresh_layers()

    # ------------------------------------------------------------------ building

    def _fill_options(self) -> None:
        from esrgan_plugin.options import Engine, Precision

        self.precision_box.addItems(list(typing.get_args(Precision)))
        self.engine_box.addItems(list(typing.get_args(Engine)))
        entries, default = choices.catalogue_choices()
        for choice in entries:
            self.add_model(choice)
        index = self.model_box.findData(default)
        self.model_box.setCurrentIndex(max(index, 0))

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Layer", self.layer_box)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_box, 1)
        model_row.addWidget(self.file_button)
        model_row.addWidget(self.folder_button)
        form.addRow("Model", model_row)
        form.addRow("Tile", self.tile_box)
        form.addRow("Precision", self.precision_box)
        form.addRow("Engine", self.engine_box)
        form.addRow(self.write_box)
        form.addRow("Output", self.output_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # ------------------------------------------------------------------ choices

    def image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, event: Any = None) -> None:
        current = self.layer_box.currentText()
        names = [layer.name for layer in self.image_layers()]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._select_active()

    def _select_active(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        if active is not None and self.layer_box.findText(active.name) >= 0:
            self.layer_box.setCurrentText(active.name)

    def add_model(self, choice: choices.ModelChoice) -> None:
        """Add (or re-select) a model in the list and select it."""
        index = self.model_box.findData(choice.value)
        if index < 0:
            self.model_box.addItem(choice.label, choice.value)
            index = self.model_box.count() - 1
            self.model_box.setItemData(index, choice.description, Qt.ItemDataRole.ToolTipRole)
        self.model_box.setCurrentIndex(index)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model file", "", "Models (*.safetensors *.pth *.pt *.param)"
        )
        if path:
            self.add_model(choices.file_choice(path))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder")
        if folder:
            self.use_folder(folder)

    def use_folder(self, folder: str) -> None:
        """Offer every model file of ``folder``; the first is selected."""
        try:
            found = choices.folder_choices(folder)
        except OSError as exc:
            self.status.setText(f"error: {exc}")
            return
        if not found:
            self.status.setText(
                f"error: {folder}: no model files ({', '.join(choices.MODEL_SUFFIXES)})"
            )
            return
        for choice in reversed(found):
            self.add_model(choice)
        self.status.setText(f"{len(found)} model(s) from {folder}")

    # ------------------------------------------------------------------ running

    def settings(self) -> jobs.Settings:
        tile = self.tile_box.value() or None
        return jobs.Settings(
            model=str(self.model_box.currentData() or ""),
            tile=tile,
            precision=self.precision_box.currentText(),
            engine=self.engine_box.currentText(),
        )

    def selected_layer(self) -> Any:
        name = self.layer_box.currentText()
        return next((layer for layer in self.image_layers() if layer.name == name), None)

    def start(self) -> None:
        """Check the choices, then run the job for the selected layer in a worker thread."""
        from napari.qt.threading import thread_worker

        from esrgan_plugin.errors import EsrganError
        from esrgan_plugin.options import UpscaleParams

        keep_triton_out()  # the canvas may have mapped Mesa's LLVM since the widget was made
        layer = self.selected_layer()
        settings = self.settings()
        try:
            if layer is None:
                raise EsrganError("no image layer to upscale")
            if not settings.model:
                raise EsrganError("no model chosen")
            UpscaleParams.checked(**settings.params())  # bad options: one line, nothing runs
            work = self._job(layer, settings)
        except EsrganError as exc:
            self.status.setText(f"error: {exc}")
            return
        self._cancel.clear()
        self.progress.setValue(0)
        self.status.setText(f"upscaling {layer.name}…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        connect = {  # an "errored" handler: napari does not re-raise in the event loop
            "returned": lambda result: self._add_result(layer, result),
            "errored": self._failed,
            "finished": self._finished,
        }
        self.worker = thread_worker(work, start_thread=False, connect=connect)()
        self.worker.start()

    def _job(self, layer: Any, settings: jobs.Settings) -> Any:
        """The function the worker runs for ``layer``: returns (data, multiscale)."""
        data, rgb, limits = layer.data, layer.rgb, tuple(layer.contrast_limits)
        if self.write_box.isChecked():
            from esrgan_plugin.errors import EsrganError

            source = _source_path(layer)
            output = self.output_edit.text().strip()
            if not layer.multiscale or source is None:
                raise EsrganError(
                    f"{layer.name}: writing OME-Zarr needs a multiscale layer opened from an OME-Zarr path"
                )
            if not output.endswith(".zarr"):
                raise EsrganError(f"output {output!r}: expected a path ending in .zarr")

            def write() -> tuple[Any, bool]:
                path = jobs.write_ome_zarr(source, output, settings, self._report)
                return jobs.open_ome_levels(path), True

            return write
        if layer.multiscale:
            return lambda: (
                jobs.upscale_lazily(data[0], rgb, limits, settings, self._report),
                False,
            )
        return lambda: (jobs.upscale_in_memory(data, rgb, limits, settings, self._report), False)

    def _report(self, fraction: float) -> None:
        """Called in the worker thread: show progress, stop when cancelled."""
        if self._cancel.is_set():
            raise jobs.Cancelled("cancelled")
        self._relay.progressed.emit(fraction)

    def cancel(self) -> None:
        self._cancel.set()
        self.status.setText("cancelling…")

    def _show_progress(self, fraction: float) -> None:
        self.progress.setValue(int(round(min(max(fraction, 0.0), 1.0) * PROGRESS_STEPS)))

    def _add_result(self, layer: Any, result: tuple[Any, bool]) -> None:
        data, multiscale = result
        level0 = data[0] if multiscale else data
        source0 = layer.data[0] if layer.multiscale else layer.data
        axis = -3 if layer.rgb else -2
        factor = level0.shape[axis] / source0.shape[axis]
        scale, translate = jobs.upscaled_geometry(
            layer.scale, layer.translate, factor, linear=_linear_part(layer)
        )
        extra: dict[str, Any] = {}
        if not layer.rgb:
            extra = {"contrast_limits": layer.contrast_limits, "colormap": layer.colormap.name}
        self.viewer.add_image(
            data,
            name=f"{layer.name} x{factor:g}",
            multiscale=multiscale,
            rgb=layer.rgb,
            scale=scale,
            translate=translate,
            rotate=layer.rotate,
            shear=layer.shear,
            affine=layer.affine,
            blending=layer.blending,
            **extra,
        )
        self.progress.setValue(PROGRESS_STEPS)
        self.status.setText(
            f"done: {layer.name} x{factor:g} ({'x'.join(map(str, np.shape(level0)))})"
        )

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, jobs.Cancelled):
            self.status.setText("cancelled; nothing added")
        else:
            from pipelines.api import first_line

            self.status.setText(f"error: {first_line(error)}")

    def _finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None


def _source_path(layer: Any) -> str | None:
    """The OME-Zarr path a layer was opened from (napari's layer source), if any."""
    path = getattr(getattr(layer, "source", None), "path", None)
    if path and ".zarr" in str(path):
        return str(Path(path))
    return None


def _linear_part(layer: Any) -> Any:
    """The layer's rotation and shear as one matrix (identity for most layers)."""
    from napari.utils.transforms import Affine

    ndim = len(layer.scale)
    return Affine(rotate=layer.rotate, shear=layer.shear, ndim=ndim).linear_matrix
