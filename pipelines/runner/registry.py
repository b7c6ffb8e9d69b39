"""Stage specifications (frozen, declarative) and the registry that holds them by dotted id."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pipelines.errors import PipelineError, suggest

Kind = Literal["images", "artefact"]
"""What flows between steps: a batch of lazy images, or an artefact value (e.g. a model path)."""

KINDS: tuple[str, ...] = ("images", "artefact")
STAGE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class StageParams(BaseModel):
    """Base of every stage's parameter model: unknown keys refused, instances immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StageSpecError(PipelineError):
    """A stage specification that is malformed (bad id, kinds or parameter model)."""


class DuplicateStageError(PipelineError):
    """Two plugins registered the same stage id."""


class UnknownStageError(PipelineError):
    """A stage id that no installed plugin registers."""


IntOrFn = int | Callable[[Any], int]
ScaleOrFn = float | Callable[[Any], float | None]


@dataclass(frozen=True)
class StageSpec:
    """One stage: its id, parameter schema, what it consumes and produces, and its function.

    The function's signature depends on the kinds (see docs/pipelines.md, "writing a plugin"):

    * ``consumes=None, produces="images"`` (a source): ``fn(params) -> list[ImageItem]``
    * ``consumes="images", produces="images"`` (a transform): ``fn(image, params) -> image`` on
      NumPy arrays, applied per block by the runner; ``halo``, ``scale`` and ``multiple`` say how
      to tile it (see :mod:`pipelines.runner.blocks`)
    * ``consumes="images", produces=None`` (a sink): ``fn(items, params) -> list[Delayed]``, each
      task computing the path (or paths) it wrote
    * ``produces="artefact"``: ``fn(params) -> str`` (or ``fn(value, params)`` when it consumes
      an artefact), run as one task; later steps reference the value as ``${steps.<id>.output}``
    """

    id: str
    description: str
    params: type[StageParams]
    fn: Callable[..., Any]
    consumes: Kind | None = "images"
    produces: Kind | None = "images"
    halo: IntOrFn = 0
    scale: ScaleOrFn = 1.0
    multiple: IntOrFn = 1
    provenance: Callable[[Any], Mapping[str, Any]] | None = None
    """For a transform: JSON-ready facts its parameters resolve to (a model's file hash, the
    device ...), kept in outputs' provenance and in the job fingerprint, so an output is resumed
    only by a job that would compute the same pixels. Must not hold the time or anything else
    that changes between identical runs."""
    pin: Callable[[Any], Any] | None = None
    """For a transform: the parameters every task runs with, from those given, resolved once
    where the job is planned (e.g. a model name pinned to its file's SHA-256, so that every
    worker of a long-lived cluster runs the same weights, or refuses a replaced file)."""

    def __post_init__(self) -> None:
        if not STAGE_ID.match(self.id):
            raise StageSpecError(
                f"stage id {self.id!r} must be dotted lower-case, like 'plugin.stage'"
            )
        if not (isinstance(self.params, type) and issubclass(self.params, BaseModel)):
            raise StageSpecError(f"stage {self.id}: params must be a pydantic model class")
        for name, kind in (("consumes", self.consumes), ("produces", self.produces)):
            if kind is not None and kind not in KINDS:
                raise StageSpecError(
                    f"stage {self.id}: {name} must be one of {KINDS} or None, got {kind!r}"
                )
        if self.consumes is None and self.produces is None:
            raise StageSpecError(f"stage {self.id}: a stage must consume or produce something")
        if not self.description.strip():
            raise StageSpecError(
                f"stage {self.id}: a description is required (it is the documentation)"
            )

    def halo_for(self, params: Any) -> int:
        """Pixels of context the function needs around a block, for these parameters."""
        value = self.halo(params) if callable(self.halo) else self.halo
        return int(value)

    def multiple_for(self, params: Any) -> int:
        """Block starts and the halo must be multiples of this (e.g. a network's pixel-unshuffle factor)."""
        value = int(self.multiple(params) if callable(self.multiple) else self.multiple)
        if value < 1:
            raise StageSpecError(f"stage {self.id}: multiple must be >= 1, got {value}")
        return value

    def pinned(self, params: Any) -> Any:
        """``params`` as every task of a job runs them (see ``pin``)."""
        if self.pin is None:
            return params
        pinned = self.pin(params)
        if not isinstance(pinned, self.params):
            raise StageSpecError(
                f"stage {self.id}: pin returned {type(pinned).__name__}, not {self.params.__name__}"
            )
        return pinned

    def provenance_for(self, params: Any) -> dict[str, Any] | None:
        """What the stage's parameters resolve to (see ``provenance``), or None when it says nothing."""
        if self.provenance is None:
            return None
        return dict(self.provenance(params))

    def scale_for(self, params: Any) -> float | None:
        """Output size / input size for these parameters; None when only known after running."""
        value = self.scale(params) if callable(self.scale) else self.scale
        if value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) and value > 0 else None


@dataclass(frozen=True)
class RegisteredStage:
    """A stage spec and the name of the plugin that registered it."""

    spec: StageSpec
    plugin: str


class StageRegistry:
    """Stage specs by id, filled explicitly by :func:`pipelines.hooks.manager.build_registry`."""

    def __init__(self) -> None:
        self._stages: dict[str, RegisteredStage] = {}

    def add(self, spec: StageSpec, plugin: str = "?") -> None:
        """Register ``spec``; a second stage with the same id is an error naming both plugins."""
        if not isinstance(spec, StageSpec):
            raise StageSpecError(f"plugin {plugin} registered {spec!r}, which is not a StageSpec")
        existing = self._stages.get(spec.id)
        if existing is not None:
            raise DuplicateStageError(
                f"stage {spec.id!r} is registered by both plugin {existing.plugin!r} and plugin {plugin!r}"
            )
        self._stages[spec.id] = RegisteredStage(spec, plugin)

    def extend(self, specs: Iterable[StageSpec], plugin: str = "?") -> None:
        for spec in specs:
            self.add(spec, plugin)

    def get(self, stage_id: str) -> StageSpec:
        """The spec for ``stage_id``, or an error suggesting the nearest registered id."""
        try:
            return self._stages[stage_id].spec
        except KeyError:
            raise UnknownStageError(
                f"unknown stage {stage_id!r}{suggest(stage_id, self.ids())}"
            ) from None

    def plugin_of(self, stage_id: str) -> str:
        return self._stages[stage_id].plugin

    def ids(self) -> list[str]:
        return sorted(self._stages)

    def __contains__(self, stage_id: object) -> bool:
        return stage_id in self._stages

    def __iter__(self) -> Iterator[StageSpec]:
        return (self._stages[i].spec for i in self.ids())

    def __len__(self) -> int:
        return len(self._stages)
