"""YAML pipeline files -> a raw, line-numbered pipeline description; ``--set`` overrides.

The text is loaded once by :mod:`pipelines.config.yaml_loader` (safe, duplicate keys refused,
merge keys resolved, the line of every value kept). Checking the content against the registry
is the job of :mod:`pipelines.config.validation`; this module refuses what is not a pipeline
file at all, collecting every such problem.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.config.yaml_loader import (
    KeyPath,
    Locations,
    YamlError,
    YamlProblem,
    parse_yaml,
    read_text,
    safe_load,
)
from pipelines.errors import PipelineError, first_line, suggest

TOP_LEVEL_KEYS = ("pipeline", "description", "executor", "steps")
STEP_KEYS = ("id", "uses", "with", "input", "description")


@dataclass(frozen=True)
class Location:
    """Where a value came from: ``file:line``, or the ``--set`` option that supplied it."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class Issue:
    """One validation problem, rendered on one line: ``file:line: step 'x' parameter 'y': what``."""

    location: Location
    message: str
    step: str | None = None
    param: str | None = None

    def __str__(self) -> str:
        subject = []
        if self.step is not None:
            subject.append(f"step {self.step!r}")
        if self.param is not None:
            subject.append(f"parameter {self.param!r}")
        where = [str(self.location)] + ([" ".join(subject)] if subject else [])
        text = " ".join(self.message.split())  # one line, whatever pydantic or YAML said
        return f"{': '.join(where)}: {text}"


class ValidationError(PipelineError):
    """A pipeline file that cannot run; ``issues`` holds one-line problems (exit code 2)."""

    def __init__(self, issues: Sequence[Issue] | str) -> None:
        self.issues: tuple[Issue, ...] = (
            (Issue(Location("<pipeline>"), issues),) if isinstance(issues, str) else tuple(issues)
        )
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class RawStep:
    """One step as written: its keys, ``with:`` values and the line of each."""

    index: int
    location: Location
    id: str | None = None
    uses: str | None = None
    input: str | None = None
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    param_locations: Mapping[str, Location] = field(default_factory=dict)
    key_locations: Mapping[str, Location] = field(default_factory=dict)
    unknown_keys: Mapping[str, Location] = field(default_factory=dict)
    bad_values: tuple[Issue, ...] = ()

    def param_location(self, name: str) -> Location:
        """The line of parameter ``name``, else of ``with:``, else of the step."""
        return self.param_locations.get(name) or self.key_locations.get("with") or self.location

    @property
    def label(self) -> str:
        return self.id if self.id else f"#{self.index + 1}"


@dataclass(frozen=True)
class RawPipeline:
    """A parsed pipeline file, not yet checked against the registry."""

    file: str
    name: str
    description: str
    executor: Any
    executor_location: Location
    steps: tuple[RawStep, ...]
    unknown_keys: Mapping[str, Location] = field(default_factory=dict)


# --------------------------------------------------------------------------- parsing


def load_config(path: str | os.PathLike[str]) -> RawPipeline:
    """Read and parse a pipeline file."""
    file = str(path)
    try:
        text = read_text(path)
    except YamlError as exc:
        message = (
            str(exc).removeprefix(f"{file}: ").replace("no such file", "no such pipeline file")
        )
        raise ValidationError([Issue(Location(file), message)]) from None
    return parse_config(text, file)


def parse_config(text: str, file: str = "<pipeline>") -> RawPipeline:
    """Parse YAML ``text`` into a :class:`RawPipeline`, keeping the line of every key."""
    try:
        data, locations = parse_yaml(text, file)
    except YamlError as exc:
        raise ValidationError([_issue_of(p, exc.document) for p in exc.problems]) from None
    return _Parser(locations).pipeline(data)


def _issue_of(problem: YamlProblem, document: Any) -> Issue:
    """The loader's problem as an Issue, naming the step and parameter where the path has them."""
    where = Location(problem.file, problem.line)
    path = problem.path
    if len(path) == 4 and path[0] == "steps" and path[2] == "with":
        message = problem.message.split(" given twice ", 1)
        text = f"given twice {message[1]}" if len(message) == 2 else problem.message
        return Issue(where, text, step=_step_label(document, int(path[1])), param=str(path[3]))
    return Issue(where, problem.message)


def _step_label(document: Any, index: int) -> str:
    """The id of step ``index`` of a loaded document, else ``#N``."""
    steps = document.get("steps") if isinstance(document, dict) else None
    step = steps[index] if isinstance(steps, list) and index < len(steps) else None
    ident = step.get("id") if isinstance(step, dict) else None
    return str(ident) if isinstance(ident, str) and ident else f"#{index + 1}"


class _Parser:
    """Turns the loaded data into raw steps, every key with its line; problems are collected."""

    def __init__(self, locations: Locations) -> None:
        self.locations = locations
        self.file = locations.file
        self.issues: list[Issue] = []

    def loc(self, path: KeyPath) -> Location:
        return Location(self.file, self.locations.line(path))

    def problem(self, path: KeyPath, message: str, **subject: str | None) -> None:
        self.issues.append(Issue(self.loc(path), message, **subject))

    def mapping(
        self, value: Any, path: KeyPath, what: str, step: str | None = None
    ) -> dict[str, Any]:
        """``value`` as a mapping with string keys; a problem (and ``{}``) when it is not one."""
        if not isinstance(value, dict):
            self.problem(path, f"{what} must be a mapping of keys to values", step=step)
            return {}
        return {str(key): item for key, item in value.items()}

    def pipeline(self, data: Any) -> RawPipeline:
        if data is None:
            raise ValidationError(
                [
                    Issue(
                        Location(self.file),
                        "the pipeline file is empty; expected a mapping with 'steps:'",
                    )
                ]
            )
        found = self.mapping(data, (), "the pipeline file")
        if not found and not isinstance(data, dict):
            raise ValidationError(self.issues)
        unknown = {k: self.loc((k,)) for k in found if k not in TOP_LEVEL_KEYS}
        steps: tuple[RawStep, ...] = ()
        if "steps" not in found:
            self.problem((), "missing 'steps:' (a list of steps, each with 'id' and 'uses')")
        elif not isinstance(found["steps"], list) or not found["steps"]:
            self.problem(("steps",), "'steps' must be a non-empty list of steps")
        else:
            steps = tuple(self.step(i, item) for i, item in enumerate(found["steps"]))
        if self.issues:
            unknown_issues = [
                Issue(where, f"unknown top-level key {key!r}{suggest(key, TOP_LEVEL_KEYS)}")
                for key, where in unknown.items()
            ]
            raise ValidationError(sorted(self.issues + unknown_issues, key=_line_of))
        return RawPipeline(
            file=self.file,
            name=str(found["pipeline"]) if "pipeline" in found else Path(self.file).stem,
            description=str(found.get("description") or ""),
            executor=found.get("executor"),
            executor_location=self.loc(("executor",))
            if "executor" in found
            else Location(self.file),
            steps=steps,
            unknown_keys=unknown,
        )

    def step(self, index: int, value: Any) -> RawStep:
        path: KeyPath = ("steps", index)
        entries = self.mapping(value, path, f"step #{index + 1}")
        ident = entries.get("id")
        label = str(ident) if ident else f"#{index + 1}"
        fields: dict[str, Any] = {}
        key_locations = {key: self.loc((*path, key)) for key in entries}
        unknown = {key: where for key, where in key_locations.items() if key not in STEP_KEYS}
        bad: list[Issue] = []
        params: dict[str, Any] = {}
        param_locations: dict[str, Location] = {}
        for key, item in entries.items():
            if key in unknown:
                continue
            if key == "with":
                if item is None:
                    continue  # `with:` left empty
                for name, param in self.mapping(item, (*path, key), "'with'", step=label).items():
                    params[name] = param
                    param_locations[name] = self.loc((*path, key, name))
            elif not isinstance(item, str) or not item.strip():
                bad.append(
                    Issue(key_locations[key], f"'{key}' must be a non-empty string, got {item!r}")
                )
            else:
                fields[key] = item.strip()
        return RawStep(
            index=index,
            location=self.loc(path),
            id=fields.get("id"),
            uses=fields.get("uses"),
            input=fields.get("input"),
            description=fields.get("description", ""),
            params=params,
            param_locations=param_locations,
            key_locations=key_locations,
            unknown_keys=unknown,
            bad_values=tuple(bad),
        )


def _line_of(issue: Issue) -> int:
    return issue.location.line or 0


# --------------------------------------------------------------------------- --set overrides


def apply_overrides(raw: RawPipeline, assignments: Iterable[str]) -> RawPipeline:
    """Apply ``STEP.PARAM=VALUE`` (and ``executor=VALUE``) options; VALUE is read as YAML."""
    steps = list(raw.steps)
    for text in assignments:
        where = Location(f"--set {text}")
        key, sep, value_text = text.partition("=")
        if not sep or not key.strip():
            raise ValidationError([Issue(where, "expected STEP.PARAM=VALUE")])
        try:
            value = safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as exc:
            raise ValidationError(
                [Issue(where, f"VALUE is not valid YAML ({first_line(exc)})")]
            ) from None
        key = key.strip()
        if key == "executor":
            raw = replace(raw, executor=value, executor_location=where)
            continue
        step_id, dot, param = key.partition(".")
        if not dot or not param:
            raise ValidationError([Issue(where, "expected STEP.PARAM=VALUE (or executor=VALUE)")])
        matches = [i for i, step in enumerate(steps) if step.id == step_id]
        if not matches:
            ids = [step.id for step in steps if step.id]
            raise ValidationError(
                [Issue(where, f"no step with id {step_id!r}{suggest(step_id, ids)}")]
            )
        for i in matches:
            steps[i] = replace(
                steps[i],
                params={**steps[i].params, param: value},
                param_locations={**steps[i].param_locations, param: where},
            )
    return replace(raw, steps=tuple(steps))
