"""A validated pipeline: typed steps in execution order and the executor to run them on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.config.loader import Location
from pipelines.runner.registry import StageParams, StageSpec

REFERENCE = re.compile(r"\$\{\s*steps\.([A-Za-z0-9_\-]+)\.output\s*\}")
"""``${steps.<id>.output}``: the artefact value produced by step ``<id>``."""


class ExecutorConfig(BaseModel):
    """Where the Dask graph runs: ``threads`` (default), ``processes`` or a scheduler address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["threads", "processes", "distributed"] = Field(
        "threads",
        description="threads: one process; processes: a LocalCluster; distributed: a scheduler",
    )
    address: str | None = Field(None, description="scheduler address such as tcp://host:8786")
    workers: int | None = Field(
        None, ge=1, description="worker processes of the LocalCluster (default: cores)"
    )
    threads_per_worker: int = Field(1, ge=1, description="threads in each LocalCluster worker")
    connect_timeout: float = Field(
        10.0, gt=0, description="seconds to wait for the scheduler to answer"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, str):
            text = value.strip()
            if "://" in text:
                return {"type": "distributed", "address": text}
            return {"type": text}
        if isinstance(value, Mapping) and value.get("address") and "type" not in value:
            return {**value, "type": "distributed"}
        return value

    @model_validator(mode="after")
    def _address_matches_type(self) -> ExecutorConfig:
        if self.type == "distributed" and not self.address:
            raise ValueError("a distributed executor needs an address such as tcp://host:8786")
        if self.type != "distributed" and self.address:
            raise ValueError(
                f"an address is only used by the distributed executor, not {self.type}"
            )
        if self.address and "://" not in self.address:
            raise ValueError(f"scheduler address {self.address!r} should look like tcp://host:8786")
        return self

    def describe(self) -> str:
        return self.address if self.type == "distributed" else self.type  # type: ignore[return-value]


@dataclass(frozen=True)
class Step:
    """A validated step: its stage, typed parameters and what it reads from.

    ``params`` is validated with ``${steps.<id>.output}`` references left in place;
    ``references`` names the artefact steps they point to (resolved when the graph runs).
    """

    id: str
    spec: StageSpec
    params: StageParams
    raw_params: Mapping[str, Any]
    input: str | None
    references: tuple[str, ...]
    location: Location
    description: str = ""

    @property
    def uses(self) -> str:
        return self.spec.id

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Steps whose output this one needs: its input, then referenced artefacts."""
        return ((self.input,) if self.input else ()) + tuple(
            r for r in self.references if r != self.input
        )


@dataclass(frozen=True)
class Pipeline:
    """A pipeline ready to run: steps in an order where every step follows its dependencies."""

    name: str
    file: str
    steps: tuple[Step, ...]
    executor: ExecutorConfig
    description: str = ""

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def references_in(value: Any) -> list[str]:
    """Step ids referenced as ``${steps.<id>.output}`` anywhere inside ``value``."""
    if isinstance(value, str):
        return REFERENCE.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in references_in(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in references_in(v)]
    return []


def substitute(value: Any, outputs: Mapping[str, Any]) -> Any:
    """``value`` with every reference replaced by its artefact (kept typed when it is the whole string)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole:
            return outputs[whole.group(1)]
        return REFERENCE.sub(lambda m: str(outputs[m.group(1)]), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, outputs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(v, outputs) for v in value]
    return value
