"""The ``rdf.yaml`` of a bioimage.io package, built with ``bioimageio.spec``'s model spec 0.5.

Only this module imports ``bioimageio.spec``'s description classes; the files it names were
written by :mod:`esrgan_plugin.export.package_files` into one folder, which becomes the
validation root. Building the description validates it (with file checks: hashes, test tensor
shapes against the axes); a rejected field is an :class:`ExportError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from esrgan_plugin.export.onnx import ExportError
from esrgan_plugin.export.package_docs import PackageFacts, PackageShape

if TYPE_CHECKING:
    from bioimageio.spec.model.v0_5 import ModelDescr

    from esrgan_plugin.models.loaded import LoadedModel

TAGS = ("super-resolution", "image-restoration", "2d", "pytorch", "onnx", "torchscript", "esrgan")

CHANNEL_NAMES = {1: ["grey"], 3: ["red", "green", "blue"]}


def describe(
    model: LoadedModel,
    facts: PackageFacts,
    shape: PackageShape,
    folder: Path,
    state_dict: tuple[Path, Path, dict[str, Any]] | None,
    opset: int,
) -> ModelDescr:
    """The model description of the package whose files are in ``folder``."""
    import pydantic
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.model import v0_5 as spec

    try:
        with ValidationContext(root=folder, perform_io_checks=True):
            return spec.ModelDescr(
                name=facts.name,
                description=facts.description,
                authors=[spec.Author(name=a) for a in facts.authors],
                cite=[spec.CiteEntry(text=c.text, doi=spec.Doi(c.doi)) for c in facts.citations],
                license=spec.LicenseId(facts.licence),
                documentation=spec.FileDescr(source=folder / "README.md"),
                covers=[spec.FileDescr(source=folder / "cover.png")],
                tags=[*TAGS, *(["real-esrgan"] if "Real-ESRGAN" in facts.source else [])],
                inputs=[_input(spec, shape, folder)],
                outputs=[_output(spec, shape, folder)],
                weights=_weights(spec, folder, state_dict, opset),
                config=_config(spec, model, shape),
            )
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        field = f" field {where}" if where else ""
        raise ExportError(
            f"bioimage.io's validator rejected the description{field}: {one_line(error['msg'])}"
        ) from None


def one_line(text: str) -> str:
    """The first non-empty line of a (possibly multi-line) message."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _data(spec: Any, shape: PackageShape) -> Any:
    return spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, shape.peak))


def _channel_axis(spec: Any, shape: PackageShape) -> Any:
    names = CHANNEL_NAMES.get(shape.channels) or [f"c{i}" for i in range(shape.channels)]
    return spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in names])


def _input(spec: Any, shape: PackageShape, folder: Path) -> Any:
    size = spec.ParameterizedSize(min=shape.min_size, step=shape.step)
    preprocessing = []
    if shape.peak != 1.0:
        gain = spec.ScaleLinearKwargs(gain=1.0 / shape.peak)
        preprocessing.append(spec.ScaleLinearDescr(kwargs=gain))
    preprocessing.append(spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0)))
    return spec.InputTensorDescr(
        id=spec.TensorId("input"),
        description=f"image in [0, {shape.peak:g}]",
        axes=[
            spec.BatchAxis(),
            _channel_axis(spec, shape),
            # input pixels are `scale` output pixels wide: the output's size reference is exact
            spec.SpaceInputAxis(id=spec.AxisId("y"), size=size, scale=float(shape.scale)),
            spec.SpaceInputAxis(id=spec.AxisId("x"), size=size, scale=float(shape.scale)),
        ],
        test_tensor=spec.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=spec.FileDescr(source=folder / "sample_input.tif"),
        data=_data(spec, shape),
        preprocessing=preprocessing,
    )


def _output(spec: Any, shape: PackageShape, folder: Path) -> Any:
    def axis(name: str) -> Any:
        size = spec.SizeReference(tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(name))
        if shape.halo:
            return spec.SpaceOutputAxisWithHalo(
                id=spec.AxisId(name), size=size, halo=shape.halo * shape.scale
            )
        return spec.SpaceOutputAxis(id=spec.AxisId(name), size=size)

    postprocessing: list[Any] = [spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0))]
    if shape.peak != 1.0:
        postprocessing.append(spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=shape.peak)))
    return spec.OutputTensorDescr(
        id=spec.TensorId("output"),
        description=f"x{shape.scale} image in [0, {shape.peak:g}]",
        axes=[spec.BatchAxis(), _channel_axis(spec, shape), axis("y"), axis("x")],
        test_tensor=spec.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=spec.FileDescr(source=folder / "sample_output.tif"),
        data=_data(spec, shape),
        postprocessing=postprocessing,
    )


def _weights(
    spec: Any, folder: Path, state_dict: tuple[Path, Path, dict[str, Any]] | None, opset: int
) -> Any:
    version = spec.Version(torch.__version__.split("+")[0])
    root = None
    pytorch = None
    if state_dict is not None:
        weights, code, kwargs = state_dict
        architecture = spec.ArchitectureFromFileDescr(
            source=code, callable=spec.Identifier("build_network"), kwargs=kwargs
        )
        pytorch = spec.PytorchStateDictWeightsDescr(
            source=weights, architecture=architecture, pytorch_version=version
        )
        root = "pytorch_state_dict"
    torchscript = spec.TorchscriptWeightsDescr(
        source=folder / "weights.torchscript",
        pytorch_version=version,
        parent=root,
        comment="traced with torch.jit.trace by esrgan-pipelines",
    )
    onnx = spec.OnnxWeightsDescr(
        source=folder / "weights.onnx",
        opset_version=opset,
        parent=root or "torchscript",
        comment="torch.onnx.export (dynamo), dynamic batch/height/width, by esrgan-pipelines",
    )
    return spec.WeightsDescr(pytorch_state_dict=pytorch, torchscript=torchscript, onnx=onnx)


def _config(spec: Any, model: LoadedModel, shape: PackageShape) -> Any:
    tolerance = spec.ReproducibilityTolerance(
        absolute_tolerance=shape.tolerance,
        relative_tolerance=0.0,
        mismatched_elements_per_million=0,
    )
    provenance = {
        "architecture": model.architecture,
        "scale": model.scale,
        "halo_input_pixels": shape.halo,
        "value_range": [0.0, shape.peak],
        "channels": shape.channels,
        "model_channels": shape.model_channels,
    }
    return spec.Config(
        bioimageio=spec.BioimageioConfig(reproducibility_tolerance=[tolerance]),
        esrgan_pipelines=provenance,
    )
