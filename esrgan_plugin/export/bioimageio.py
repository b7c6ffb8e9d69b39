"""bioimage.io model packages (model spec 0.5), validated and tested before they are written.

``export_bioimageio(model, "model.zip")`` writes a package that bioimage.io's tools (ilastik,
deepImageJ, Fiji, BiaPy, ``bioimageio.core``) run:

- weights as ``pytorch_state_dict`` (with a self-contained architecture file, when the network's
  source allows it), TorchScript and ONNX, all float32 and checked against PyTorch;
- input ``input`` (batch, channel, y, x) whose y and x are ``min + n * step``: ``step`` is the
  network's multiple and ``min`` the smallest multiple above twice the halo (and at least the
  network's minimum), so that output remains once the halo is cropped;
- output ``output`` sized from the input by a size reference at the model's scale, with the
  halo measured for the model (:func:`esrgan_plugin.tiles.halo.model_halo`) declared on y and x;
- pre-processing that maps the documented value range to [0, 1] and clips, post-processing
  that clips and maps back, so the package takes and gives that range (``0..255`` by default);
- test tensors made by our own inference, a cover (input | output), a README with the model's
  authors, licence, training data, intended use, the warning that GAN models invent detail and
  the citations (:mod:`esrgan_plugin.export.package_docs`).

``channels=1`` makes a grey package of a colour model: the grey channel is replicated to the
network's inputs and the output is its luma (:mod:`esrgan_plugin.export.grey`), as ``esrgan
upscale`` does for grey images. The package is assembled in a temporary folder, zipped by
``bioimageio.spec``, loaded back by its validator and run by ``bioimageio.core.test_model``
(every weights format, the test tensors and three input sizes, on the CPU); only a package
that passes is moved to the output path (temporary name, then rename).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from esrgan_plugin.export.onnx import DEFAULT_OPSET, ExportError
from esrgan_plugin.export.package_docs import PackageFacts, PackageShape, package_facts, readme
from esrgan_plugin.tiles.grid import round_up
from pipelines.api import atomic_target

if TYPE_CHECKING:
    from bioimageio.spec import ValidationSummary
    from bioimageio.spec.model.v0_5 import ModelDescr

    from esrgan_plugin.models.catalogue import ModelEntry
    from esrgan_plugin.models.loaded import LoadedModel

VALUE_RANGES: dict[str, float] = {"0..1": 1.0, "0..255": 255.0, "0..65535": 65535.0}
"""Value ranges a package can take and give, by name; the network itself works in [0, 1]."""

DEFAULT_VALUE_RANGE = "0..255"

PACKAGE_TOLERANCE = 0.5 / 255
"""Reproducibility tolerance stated in packages, as a fraction of the value range: half an
8-bit level, the bound the project's seamless tiles are held to."""

DEFAULT_TEST_SIZE = 64
"""Input side of the test tensors (rounded up to a valid size)."""

TEST_DEVICES = ["cpu"]
"""Where ``test_model`` runs before writing: the CPU, present everywhere, deterministic."""


@dataclass(frozen=True)
class BioimageioOptions:
    """What the package takes and says; ``None`` fields come from the model and its entry."""

    channels: int | None = None
    """Input/output channels: the model's own, or 1 for a colour model applied to grey."""
    value_range: str = DEFAULT_VALUE_RANGE
    test_size: int = DEFAULT_TEST_SIZE
    opset: int = DEFAULT_OPSET
    authors: tuple[str, ...] = ()
    licence: str | None = None

    def __post_init__(self) -> None:
        if self.value_range not in VALUE_RANGES:
            raise ExportError(
                f"value range {self.value_range!r}: expected one of {', '.join(VALUE_RANGES)}"
            )
        if self.test_size < 1:
            raise ExportError(f"test size {self.test_size}: expected at least 1")

    @property
    def peak(self) -> float:
        return VALUE_RANGES[self.value_range]


@dataclass(frozen=True)
class BioimageioExport:
    """What was written and what the checks found."""

    path: Path
    name: str
    weights: tuple[str, ...]
    channels: int
    min_size: int
    step: int
    halo: int
    """In input pixels (the package declares ``halo * scale`` on the output)."""
    test_shape: tuple[int, ...]
    onnx_error: float
    torchscript_error: float
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Plan:
    channels: int
    wrap_grey: bool
    halo: int
    min_size: int
    step: int
    test_size: int


def require_bioimageio() -> None:
    """bioimage.io export needs ``bioimageio.spec`` and ``bioimageio.core`` (the extra)."""
    missing = [n for n in ("bioimageio.spec", "bioimageio.core") if not _installed(n)]
    if missing:
        raise ExportError(
            f"bioimage.io export needs {' and '.join(missing)}: "
            "pip install 'esrgan-pipelines[bioimageio]'"
        )


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def catalogue_entry(name_or_path: str) -> tuple[str, ModelEntry | None]:
    """The label and catalogue entry of a model argument: a name, or a file that is an entry's."""
    from esrgan_plugin.models.catalogue import DEFAULT_NAME, catalogue

    known = catalogue()
    name = known.default_name() if name_or_path == DEFAULT_NAME else name_or_path
    entry = known.get(name)
    if entry is not None:
        return name, entry
    path = Path(name_or_path).expanduser()
    resolved = path.resolve() if path.exists() else None
    for candidate in known.entries.values():
        located = candidate.path()
        if resolved is not None and located is not None and located.resolve() == resolved:
            return candidate.name, candidate
    return path.stem if path.suffix else path.name, None


def plan_package(model: LoadedModel, options: BioimageioOptions) -> _Plan:
    """Channels, halo and the valid input sizes of the package."""
    from esrgan_plugin.tiles.halo import model_halo

    needs = model.needs
    channels = options.channels or model.in_channels
    wrap_grey = channels == 1 and model.in_channels == 3 and model.out_channels == 3
    if channels != model.in_channels and not wrap_grey:
        raise ExportError(
            f"--channels {channels}: this model takes {model.in_channels} channel(s); "
            "expected that count, or 1 for a colour model"
        )
    if needs.square:
        raise ExportError(f"{model.architecture} takes only square inputs; not packaged")
    halo = model_halo(model.module).halo
    step = needs.multiple_of
    min_size = max(needs.min_size, round_up(2 * halo + 1, step), round_up(4, step))
    test_size = min_size + round_up(max(0, options.test_size - min_size), step)
    return _Plan(channels, wrap_grey, halo, min_size, step, test_size)


def export_bioimageio(
    model: LoadedModel,
    path: str | os.PathLike[str],
    options: BioimageioOptions | None = None,
    *,
    label: str | None = None,
    entry: ModelEntry | None = None,
    overwrite: bool = False,
) -> BioimageioExport:
    """Write ``model`` as a bioimage.io package at ``path`` (.zip), tested before it is written.

    ``label`` names the model (catalogue name or file stem) and ``entry`` is its catalogue
    entry (authors, licence, citations, training data); nothing is left at ``path`` on error.
    """
    options = options or BioimageioOptions()
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise ExportError(f"{path}: a bioimage.io package is a .zip file")
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: output exists; pass --overwrite to replace it")
    check_writable(path)
    require_bioimageio()
    plan = plan_package(model, options)
    label = label or Path(model.source).stem or model.architecture
    facts = package_facts(model, label, entry, plan.channels, options.authors, options.licence)
    if not facts.licence:
        raise ExportError(
            f"{label}: the model's licence is not known; pass --licence with an SPDX "
            "identifier (e.g. --licence CC-BY-4.0)"
        )
    _check_licence(facts.licence)
    with tempfile.TemporaryDirectory(prefix="esrgan-bioimageio-") as work:
        folder = Path(work)
        result = _build(model, options, plan, facts, folder)
        try:
            with atomic_target(path) as tmp:
                shutil.copyfile(folder / "package.zip", tmp)
        except OSError as exc:
            raise ExportError(f"{path}: cannot write the package ({exc.strerror or exc})") from None
    return BioimageioExport(path=path, **result)


def _check_licence(licence: str) -> None:
    """Refuse a licence bioimage.io does not know before the (minutes-long) export."""
    import pydantic
    from bioimageio.spec.model.v0_5 import LicenseId

    try:
        LicenseId(licence)
    except pydantic.ValidationError:
        raise ExportError(
            f"licence {licence!r}: not an SPDX licence identifier bioimage.io accepts "
            "(e.g. MIT, Apache-2.0, CC-BY-4.0)"
        ) from None


def check_writable(path: Path) -> None:
    """Refuse an output whose folder cannot be created or written, naming why."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"{path}: cannot write the package ({folder} is not a writable folder)")


def _build(
    model: LoadedModel,
    options: BioimageioOptions,
    plan: _Plan,
    facts: PackageFacts,
    folder: Path,
) -> dict[str, Any]:
    """Write every file into ``folder``, describe, zip, validate and test the package."""
    from esrgan_plugin.export import package_files as files
    from esrgan_plugin.export.grey import ReplicatedChannel
    from esrgan_plugin.export.package_source import SourceUnavailable, architecture_source

    module = model.module.eval()
    network = ReplicatedChannel(module).eval() if plan.wrap_grey else module
    notes: list[str] = []
    state_dict: tuple[Path, Path, dict[str, Any]] | None = None
    try:
        arch = model.descriptor
        wrapper = ReplicatedChannel if plan.wrap_grey else None
        source = architecture_source(arch.module_class, arch.config_class, model.config, wrapper)
        weights_file, code = files.write_state_dict(network, source, plan.channels, folder)
        state_dict = (weights_file, code, source.kwargs)
    except (SourceUnavailable, OSError, TypeError, ValueError) as exc:
        notes.append(f"no pytorch_state_dict weights: {exc}")
        for leftover in ("weights.pt", "architecture.py"):
            (folder / leftover).unlink(missing_ok=True)
    sizes = (plan.test_size, plan.test_size + plan.step)
    ts_error = files.write_torchscript(
        network, sizes, plan.channels, folder / "weights.torchscript"
    )
    onnx_error = files.write_onnx(
        network, model, plan.channels, options.opset, folder / "weights.onnx"
    )
    image = files.sample_image(plan.channels, plan.test_size, plan.test_size)
    output = files.reference_output(model, image)
    given = files.to_tensor(image, options.peak)
    expected = files.to_tensor(output, options.peak)
    np.save(folder / "test_input.npy", given)
    np.save(folder / "test_output.npy", expected)
    files.write_sample(given, folder / "sample_input.tif")
    files.write_sample(expected, folder / "sample_output.tif")
    files.write_cover(image, output, folder / "cover.png")
    weights = (("pytorch_state_dict",) if state_dict else ()) + ("torchscript", "onnx")
    shape = PackageShape(
        channels=plan.channels,
        model_channels=model.in_channels,
        peak=options.peak,
        scale=model.scale,
        min_size=plan.min_size,
        step=plan.step,
        halo=plan.halo,
        test_shape=(1, plan.channels, plan.test_size, plan.test_size),
        weights=weights,
        onnx_error=onnx_error,
        torchscript_error=ts_error,
        # bioimage.io caps the tolerance at 1% of the test output's largest value (0.9%: margin
        # for its float32 arithmetic)
        tolerance=min(PACKAGE_TOLERANCE * options.peak, 0.009 * float(expected.max())),
    )
    (folder / "README.md").write_text(readme(facts, shape))
    from esrgan_plugin.export.package_descr import describe

    descr = describe(model, facts, shape, folder, state_dict, options.opset)
    _save_and_test(descr, folder / "package.zip")
    return {
        "name": facts.name,
        "weights": weights,
        "channels": plan.channels,
        "min_size": plan.min_size,
        "step": plan.step,
        "halo": plan.halo,
        "test_shape": shape.test_shape,
        "onnx_error": onnx_error,
        "torchscript_error": ts_error,
        "notes": tuple(notes),
    }


def _save_and_test(descr: ModelDescr, zip_path: Path) -> None:
    """Zip with ``bioimageio.spec`` (which loads the zip back through its validator), then run
    ``bioimageio.core.test_model``; a failure is an :class:`ExportError` with its first error."""
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    with _quiet_bioimageio(), _kept_random_state(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        try:
            save_bioimageio_package(descr, output_path=zip_path)
        except ValueError as exc:
            raise ExportError(
                f"bioimage.io's validator rejected the package: {_last_line(exc)}"
            ) from None
        summary = test_model(zip_path, devices=TEST_DEVICES)
    if summary.status != "passed":
        raise ExportError(f"bioimageio.core's test_model failed: {first_error(summary)}")


def first_error(summary: ValidationSummary) -> str:
    """The first error of a validation summary, as one line naming where it is."""
    from esrgan_plugin.export.package_descr import one_line

    for detail in summary.details:
        for error in detail.errors:
            where = ".".join(str(part) for part in error.loc)
            return f"{where}: {one_line(error.msg)}" if where else one_line(error.msg)
    return f"status {summary.status}"


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


@contextlib.contextmanager
def _quiet_bioimageio() -> Iterator[None]:
    """bioimage.io's libraries log through loguru; an export prints only its own summary."""
    from loguru import logger

    logger.disable("bioimageio")
    try:
        yield
    finally:
        logger.enable("bioimageio.core")


@contextlib.contextmanager
def _kept_random_state() -> Iterator[None]:
    """``test_model`` seeds torch and NumPy globally; the caller's random state is restored."""
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        torch.use_deterministic_algorithms(deterministic)
