"""The files inside a bioimage.io package: weights, architecture source, test tensors, cover.

Every weights file holds the same float32 network: the PyTorch state dict (with the
self-contained architecture source of :mod:`esrgan_plugin.export.package_source`), TorchScript
(traced, then checked at a second input size against the eager module, so no shape was frozen
by the trace) and ONNX (:mod:`esrgan_plugin.export.onnx`, dynamic shape, checked against
onnxruntime). Test tensors are a crop of scikit-image's immunohistochemistry image and its
upscaled version made by our own :class:`~esrgan_plugin.inference.Upscaler`, which is what
``esrgan upscale`` runs.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from esrgan_plugin.export.onnx import (
    FP32_TOLERANCE,
    ExportError,
    OnnxExportOptions,
    check_graph,
    export_graph,
    write_graph,
)
from esrgan_plugin.export.package_source import ArchitectureSource, SourceUnavailable
from esrgan_plugin.models.loaded import LoadedModel
from pipelines.api import first_line

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

COVER_ROWS = 256
"""Height of the cover image in pixels (the output crop; the input is shown beside it)."""


@dataclass(frozen=True)
class WeightsCheck:
    """Largest difference from the eager PyTorch module, in [0, 1] units."""

    onnx: float
    torchscript: float


def write_state_dict(
    module: nn.Module, source: ArchitectureSource, channels: int, folder: Path
) -> tuple[Path, Path]:
    """The state dict and the architecture file, after checking that the file rebuilds the
    network exactly (strict loading, identical output)."""
    weights = folder / "weights.pt"
    code = folder / "architecture.py"
    code.write_text(source.text)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()
    }
    torch.save(state, weights)
    name = f"_esrgan_package_architecture_{id(source)}"
    spec = importlib.util.spec_from_file_location(name, code)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(loaded)
        rebuilt = getattr(loaded, source.callable)(**source.kwargs).eval()
        rebuilt.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    except Exception as exc:  # whatever the assembled file raises: it cannot be packaged
        raise SourceUnavailable(
            f"the assembled architecture file fails: {first_line(exc)}"
        ) from None
    finally:
        del sys.modules[name]
    x = torch.rand(1, channels, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        if not torch.equal(rebuilt(x), module(x)):
            raise SourceUnavailable("the assembled architecture file computes a different network")
    return weights, code


def write_torchscript(
    module: nn.Module, sizes: tuple[int, int], channels: int, path: Path
) -> float:
    """Trace ``module`` at the first of ``sizes`` and check it at the second (both valid input
    sides); returns the largest difference from the eager module."""
    generator = torch.Generator().manual_seed(1)
    example = torch.rand(1, channels, sizes[0], sizes[0], generator=generator)
    check = torch.rand(2, channels, sizes[1], sizes[0], generator=generator)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic
            traced = torch.jit.trace(module, example, check_trace=False)
            error = float((traced(check) - module(check)).abs().max())
            if error <= FP32_TOLERANCE:
                torch.jit.save(traced, str(path))
    except Exception as exc:  # tracing raises many types; name the first line
        raise ExportError(f"TorchScript tracing failed: {first_line(exc)}") from None
    if not error <= FP32_TOLERANCE:
        raise ExportError(
            f"the TorchScript trace differs from PyTorch by {error:.3g} at {tuple(check.shape)}"
        )
    return error


def write_onnx(
    module: nn.Module, model: LoadedModel, channels: int, opset: int, path: Path
) -> float:
    """A dynamic-shape ONNX graph of ``module``, checked against onnxruntime."""
    options = OnnxExportOptions(dynamic=True, opset=opset)
    graph = export_graph(module, channels, model.scale, model.multiple_of, options)
    error, shape = check_graph(graph, module, channels, options)
    if not error <= options.tolerance:
        raise ExportError(
            f"onnxruntime differs from PyTorch by {error:.3g} on a {shape} input "
            f"(tolerance {options.tolerance:g})"
        )
    write_graph(graph, path)
    return error


def sample_image(channels: int, height: int, width: int) -> np.ndarray:
    """(H, W, C) float32 in [0, 1]: a crop of scikit-image's immunohistochemistry image (RGB),
    its luma for one channel, its first channels or their mean for other counts."""
    from skimage import data

    rgb = data.immunohistochemistry().astype(np.float32) / 255.0
    rows, cols = rgb.shape[:2]
    if height > rows or width > cols:
        reps = (-(-height // rows), -(-width // cols), 1)
        rgb = np.tile(rgb, reps)
    top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
    crop = rgb[top : top + height, left : left + width]
    if channels == 3:
        return np.ascontiguousarray(crop)
    if channels == 1:
        return np.ascontiguousarray((crop @ _LUMA)[..., None])
    stack = [crop[..., i % 3] for i in range(channels)]
    return np.ascontiguousarray(np.stack(stack, axis=2))


def reference_output(model: LoadedModel, image: np.ndarray) -> np.ndarray:
    """Our own inference of ``image`` ((H, W, C) float in [0, 1]): the whole image, fp32,
    PyTorch on the CPU, as ``esrgan upscale --tile 0 --precision fp32 --engine pytorch``."""
    from esrgan_plugin.inference import Upscaler
    from esrgan_plugin.options import UpscaleOptions

    options = UpscaleOptions(tile=0, device="cpu", precision="fp32", engine="pytorch")
    pixels = image[..., 0] if image.shape[2] == 1 else image
    out = Upscaler(model, options).upscale(pixels)
    return out[..., None] if out.ndim == 2 else out


def to_tensor(image: np.ndarray, peak: float) -> np.ndarray:
    """(H, W, C) in [0, 1] -> (1, C, H, W) float32 in [0, peak]."""
    return np.ascontiguousarray((image * np.float32(peak)).transpose(2, 0, 1)[None], np.float32)


def write_sample(tensor: np.ndarray, path: Path) -> Path:
    """A (1, C, H, W) tensor as a (C, H, W) float32 TIFF: bioimage.io's human-readable sample."""
    import tifffile

    tifffile.imwrite(path, tensor[0], photometric="minisblack")
    return path


def write_cover(image: np.ndarray, output: np.ndarray, path: Path) -> Path:
    """input (nearest-upscaled to the output's size) | output, at most :data:`COVER_ROWS` tall."""
    from PIL import Image

    scale = output.shape[0] // image.shape[0]
    nearest = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    rows = min(COVER_ROWS, output.shape[0], output.shape[1])
    panels = [p[:rows, :rows] for p in (nearest, output)]
    both = np.concatenate(panels, axis=1)
    if both.shape[2] != 3:
        both = np.repeat(both[..., :1], 3, axis=2)
    pixels = (np.clip(both, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(pixels).save(path, optimize=True)
    return path
