"""OME-Zarr (NGFF 0.4 and 0.5) image metadata: recognising an image group, its axes and levels.

An NGFF image is a Zarr group whose ``multiscales`` attribute (NGFF 0.4, Zarr v2; under ``ome``
in NGFF 0.5, Zarr v3) lists its axes (``t``, ``c``, ``z``, ``y``, ``x`` ..., each with a type
and unit) and its pyramid levels, each a child array with ``coordinateTransformations``
(a ``scale`` and optionally a ``translation`` per axis: the physical position of pixel
centres). ``omero`` holds per-channel display metadata (labels, colours, intensity windows).
The two innermost axes are y and x; every other axis except the channel axis is looped over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import ImageIOError

WRITE_VERSION = "0.5"
"""The NGFF version written (Zarr v3, so chunks keep their CRC-32C checksums)."""


@dataclass(frozen=True)
class Axis:
    """One NGFF axis: its name, type (``time``, ``channel``, ``space`` or None) and unit."""

    name: str
    type: str | None = None
    unit: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name}
        if self.type:
            out["type"] = self.type
        if self.unit:
            out["unit"] = self.unit
        return out


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path in the group, and its per-axis scale and translation."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None

    def transforms(self) -> list[dict[str, Any]]:
        """The level's ``coordinateTransformations`` (scale, then translation if any)."""
        out: list[dict[str, Any]] = [{"type": "scale", "scale": list(self.scale)}]
        if self.translation is not None:
            out.append({"type": "translation", "translation": list(self.translation)})
        return out


@dataclass(frozen=True)
class OmeImage:
    """An NGFF image group: where it is, its version, axes, levels and the rest of its metadata."""

    path: str
    version: str
    axes: tuple[Axis, ...]
    levels: tuple[Level, ...]
    name: str | None = None
    transforms: tuple[Mapping[str, Any], ...] = ()
    omero: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def channel_axis(self) -> int | None:
        """The index of the channel axis, or None for an image without one."""
        for i, axis in enumerate(self.axes):
            if axis.type == "channel" or (axis.type is None and axis.name == "c"):
                return i
        return None

    @property
    def loop_axes(self) -> tuple[int, ...]:
        """Axes looped over: all but the channel axis and the last two (y, x)."""
        c = self.channel_axis
        return tuple(i for i in range(len(self.axes) - 2) if i != c)


def ome_attributes(attrs: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(version, the OME attributes) of a group's attributes, or None when it is not an NGFF image."""
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        return str(ome.get("version", WRITE_VERSION)), ome
    multiscales = attrs.get("multiscales")
    if isinstance(multiscales, list) and multiscales:
        first = multiscales[0] if isinstance(multiscales[0], Mapping) else {}
        return str(first.get("version", "0.4")), attrs
    return None


def parse_image(path: str, attrs: Mapping[str, Any]) -> OmeImage:
    """The first multiscale image described by an NGFF group's attributes, checked."""
    try:
        return _parse_image(path, attrs)
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        # a value of the wrong JSON type somewhere in the tree (found by fuzzing)
        raise ImageIOError(
            f"{path}: malformed OME-Zarr metadata ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None


def _parse_image(path: str, attrs: Mapping[str, Any]) -> OmeImage:
    found = ome_attributes(attrs)
    if found is None:
        raise ImageIOError(f"{path}: not an OME-Zarr image (no multiscales attribute)")
    version, ome = found
    if version not in ("0.4", "0.5"):
        raise ImageIOError(
            f"{path}: OME-Zarr version {version} is not supported; expected 0.4 or 0.5"
        )
    multiscale = ome["multiscales"][0]
    axes = tuple(_axis(path, a) for a in multiscale.get("axes", ()))
    if len(axes) < 2:
        raise ImageIOError(f"{path}: OME-Zarr multiscales needs at least the axes y and x")
    datasets = multiscale.get("datasets") or []
    if not datasets:
        raise ImageIOError(f"{path}: OME-Zarr multiscales lists no datasets (pyramid levels)")
    levels = tuple(_level(path, d, len(axes)) for d in datasets)
    omero = ome.get("omero")
    return OmeImage(
        path=path,
        version=version,
        axes=axes,
        levels=levels,
        name=multiscale.get("name"),
        transforms=tuple(multiscale.get("coordinateTransformations") or ()),
        omero=omero if isinstance(omero, Mapping) else None,
        extra={k: v for k, v in multiscale.items() if k in ("type", "metadata")},
    )


def _axis(path: str, value: Any) -> Axis:
    if isinstance(value, str):  # NGFF 0.3 style names
        return Axis(value, "channel" if value == "c" else "time" if value == "t" else "space")
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ImageIOError(f"{path}: OME-Zarr axis {value!r} has no name")
    return Axis(value["name"], value.get("type"), value.get("unit"))


def _level(path: str, dataset: Mapping[str, Any], ndim: int) -> Level:
    scale: tuple[float, ...] = (1.0,) * ndim
    translation = None
    for transform in dataset.get("coordinateTransformations") or ():
        kind = transform.get("type")
        values = transform.get(kind) if kind in ("scale", "translation") else None
        if values is None:
            continue
        if len(values) != ndim:
            raise ImageIOError(
                f"{path}/{dataset.get('path')}: {kind} has {len(values)} values for {ndim} axes"
            )
        if kind == "scale":
            scale = tuple(float(v) for v in values)
        else:
            translation = tuple(float(v) for v in values)
    return Level(str(dataset["path"]), scale, translation)


def upscaled_level(level: Level, ndim: int, factors: tuple[float, float], path: str = "0") -> Level:
    """The level of an image upscaled by ``factors`` in (y, x): pixels that many times smaller.

    Pixel centres move too: output pixel 0 is centred ``(1 - 1/factor) / 2`` input pixels before
    the input's pixel 0, so the translation shifts by ``-(scale_in - scale_out) / 2``.
    """
    scale = list(level.scale)
    shift = [0.0] * ndim
    for axis, factor in zip((ndim - 2, ndim - 1), factors, strict=True):
        scale[axis] = level.scale[axis] / factor
        shift[axis] = -(level.scale[axis] - scale[axis]) / 2
    return Level(path, tuple(scale), _moved(level.translation, shift, ndim))


def downsampled_level(base: Level, ndim: int, factor: int, method: str, path: str) -> Level:
    """A pyramid level ``factor`` times coarser in y and x than ``base``.

    With ``mean`` a pixel is the mean of a ``factor`` x ``factor`` block, so its centre is that
    block's centre; with ``nearest`` it is the block's first pixel, whose centre does not move.
    """
    scale = list(base.scale)
    shift = [0.0] * ndim
    for axis in (ndim - 2, ndim - 1):
        scale[axis] = base.scale[axis] * factor
        if method == "mean":
            shift[axis] = base.scale[axis] * (factor - 1) / 2
    return Level(path, tuple(scale), _moved(base.translation, shift, ndim))


def _moved(
    translation: tuple[float, ...] | None, shift: Sequence[float], ndim: int
) -> tuple[float, ...] | None:
    if translation is None and not any(shift):
        return None
    start = translation or (0.0,) * ndim
    return tuple(t + s for t, s in zip(start, shift, strict=True))


def multiscales_json(
    image: OmeImage,
    axes: Sequence[Axis],
    levels: Sequence[Level],
    name: str,
    method: str,
    description: str,
) -> dict[str, Any]:
    """The ``multiscales`` entry of an output image (NGFF 0.5: no per-entry version).

    ``method`` is how the pyramid was made (its ``type``); ``description`` goes into ``metadata``.
    """
    entry: dict[str, Any] = {
        "name": name,
        "axes": [a.to_json() for a in axes],
        "datasets": [
            {"path": lv.path, "coordinateTransformations": lv.transforms()} for lv in levels
        ],
        "type": method,
        "metadata": {"description": description},
    }
    if image.transforms:
        entry["coordinateTransformations"] = [dict(t) for t in image.transforms]
    return entry


def omero_subset(omero: Mapping[str, Any] | None, channels: Sequence[int]) -> dict[str, Any] | None:
    """``omero`` with only the chosen channels (in their new order), or None without one."""
    if omero is None:
        return None
    out = dict(omero)
    listed = omero.get("channels")
    if isinstance(listed, list) and listed:
        out["channels"] = [listed[c] for c in channels if c < len(listed)]
    return out


@dataclass(frozen=True)
class OmePlane:
    """Where one pipeline image sits in an OME-Zarr image it was read from, and how to undo its window.

    ``shape`` is the selected part of the level, in the image's axis order; ``position`` the
    image's index along each looped axis of that selection; ``channels`` the positions of its
    channels in the selected channels (``source_channels`` are the selected channels of the
    input); ``windows`` the intensity window of each of its channels and ``dtype`` the input's
    sample type, so that a writer can return values to the input's units.
    """

    image: OmeImage
    level: int
    name: str
    shape: tuple[int, ...]
    position: tuple[int, ...]
    channels: tuple[int, ...]
    source_channels: tuple[int, ...]
    windows: tuple[tuple[float, float], ...]
    dtype: str
