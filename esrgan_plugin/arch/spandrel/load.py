"""Loading a state dict through spandrel, for architectures the project does not build itself.

spandrel is only ever given tensors the project read itself (``models.loading.read_state_dict``:
safetensors, or ``torch.load(weights_only=True)``), never a file: it cannot unpickle anything.
Architectures from ``spandrel_extra_arches`` (restrictive licences) are recognised when that
package is installed (``pip install 'esrgan-pipelines[extra-arches]'``), after spandrel's own,
in a registry of our own (spandrel's global registry is left as it is).

Before the network is built for real it is built on the meta device, where that works, and its
size compared with the file's tensors: a file cannot make us allocate a network it does not fill.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

from esrgan_plugin.arch.keys import StateDict
from esrgan_plugin.arch.spandrel.network import (
    UNBOUNDED_RADIUS,
    SpandrelConfig,
    SpandrelNetwork,
    feature_channels,
    receptive_radius,
    shapes_digest,
)
from esrgan_plugin.errors import CheckpointError
from pipelines.api import first_line

log = logging.getLogger(__name__)

EXTRA_PACKAGE = "spandrel_extra_arches"
EXTRA_INSTALL = "pip install 'esrgan-pipelines[extra-arches]'"

_SIZE_SLACK = 1.01
"""The network built from a file's shapes may exceed the file's tensors by this factor (buffers
the file omits), no more."""


def spandrel_installed() -> bool:
    """Whether spandrel can be imported (found without importing it)."""
    return importlib.util.find_spec("spandrel") is not None


def extra_installed() -> bool:
    """Whether ``spandrel_extra_arches`` is installed (found without importing it)."""
    return importlib.util.find_spec(EXTRA_PACKAGE) is not None


def spandrel_version() -> str:
    try:
        return version("spandrel")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def registry() -> Any:
    """spandrel's architectures, then ``spandrel_extra_arches``' when installed (a copy of
    spandrel's registry: other users of spandrel in this process see no change)."""
    with warnings.catch_warnings():  # the extra package's modules warn about torch.jit on import
        warnings.simplefilter("ignore")
        import spandrel

        found = spandrel.MAIN_REGISTRY.copy()
        if extra_installed():
            from spandrel_extra_arches import EXTRA_REGISTRY

            found.add(*EXTRA_REGISTRY, ignore_duplicates=True)
    return found


def architecture_names() -> list[str]:
    """Every architecture id spandrel (and the extra package, when installed) recognises."""
    return [support.architecture.id for support in registry().architectures("detection")]


def summary() -> str:
    """One line for error messages: what spandrel adds to the accepted architectures."""
    if not spandrel_installed():
        return "other architectures need spandrel (pip install spandrel)"
    names = architecture_names()
    extra = "" if extra_installed() else f"; more with {EXTRA_INSTALL}"
    return (
        f"nor any of the {len(names)} architectures spandrel {spandrel_version()} recognises{extra}"
    )


def load(state: StateDict, source: str) -> SpandrelNetwork | None:
    """The network spandrel builds from ``state``; None when spandrel does not recognise it."""
    if not spandrel_installed():
        return None
    reg = registry()
    support = next((s for s in reg.architectures("detection") if s.detect(state)), None)
    if support is None:
        return None
    arch = support.architecture
    _check_size(arch, state, source)
    descriptor = _build(arch, dict(state), source)
    import spandrel

    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(
            f"{source}: {arch.id} is a {descriptor.purpose.lower()} model (an image and a mask "
            "in); esrgan runs models that take an image only"
        )
    module = descriptor.model.eval().requires_grad_(False)
    size = descriptor.size_requirements
    config = SpandrelConfig(
        architecture=str(arch.id),
        scale=int(descriptor.scale),
        in_channels=int(descriptor.input_channels),
        out_channels=int(descriptor.output_channels),
        purpose=str(descriptor.purpose),
        tags=tuple(str(t) for t in descriptor.tags),
        min_size=int(size.minimum),
        multiple_of=int(size.multiple_of),
        square=bool(size.square),
        tiling=descriptor.tiling.name.lower(),
        supports_half=bool(descriptor.supports_half),
        supports_bfloat16=bool(descriptor.supports_bfloat16),
        parameters=sum(p.numel() for p in module.parameters()),
        feature_channels=feature_channels(module),
        receptive_radius=receptive_radius(module)
        if descriptor.tiling == spandrel.ModelTiling.SUPPORTED
        else UNBOUNDED_RADIUS,
        extra=type(arch).__module__.startswith(EXTRA_PACKAGE),
        loader=f"spandrel {spandrel_version()}",
        shapes=shapes_digest(state),
    )
    call = getattr(descriptor, "_call_fn", None)  # how spandrel calls this architecture's module
    return SpandrelNetwork(module, config, call)


def _build(arch: Any, state: StateDict, source: str) -> Any:
    """spandrel's model for ``state`` on the CPU; its failures as one-line errors."""
    try:
        with warnings.catch_warnings():  # architectures' own deprecation noise
            warnings.simplefilter("ignore")
            return arch.load(state)
    except Exception as exc:  # spandrel raises anything from a malformed state dict
        raise CheckpointError(
            f"{source}: spandrel recognised a {arch.id} model but could not build it "
            f"({type(exc).__name__}: {first_line(exc)[:200]})"
        ) from None


def _check_size(arch: Any, state: StateDict, source: str) -> None:
    """Refuse a file whose shapes make spandrel build a network much larger than its tensors.

    The network is built on the meta device (no memory); an architecture whose construction
    needs real values there (``Tensor.item``) is not checked this way, and spandrel's strict
    loading still refuses a mismatch once it is built.
    """
    stored = sum(t.numel() for t in state.values())
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            skeleton = arch.load(dict(state)).model
    except Exception:  # noqa: BLE001  (checked by the real build and strict loading instead)
        return
    built = sum(p.numel() for p in skeleton.parameters())
    if built > stored * _SIZE_SLACK:
        raise CheckpointError(
            f"{source}: the {arch.id} network these shapes describe has {built:,} parameters but "
            f"the file holds {stored:,} values; refusing to build it"
        )
