"""YAML pipeline files -> a raw, line-numbered pipeline description; ``--set`` overrides.

The YAML is composed with the safe loader so every key keeps its line; values are then built
with the same safe constructor. Checking the content against the registry is the job of
:mod:`pipelines.config.validation`; this module only refuses what is not a pipeline file at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.config.strict_yaml import SafeLoader, safe_load
from pipelines.errors import PipelineError

TOP_LEVEL_KEYS = ("pipeline", "description", "executor", "steps")
STEP_KEYS = ("id", "uses", "with", "input", "description")
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Issue(Location(file), "no such pipeline file")]) from None
    except UnicodeDecodeError:
        raise ValidationError([Issue(Location(file), "not a YAML file (not UTF-8 text)")]) from None
    except OSError as exc:
        raise ValidationError(
            [Issue(Location(file), f"cannot read: {exc.strerror or exc}")]
        ) from None
    return parse_config(text, file)


def parse_config(text: str, file: str = "<pipeline>") -> RawPipeline:
    """Parse YAML ``text`` into a :class:`RawPipeline`, keeping the line of every key."""
    from pipelines.config.strict_yaml import YamlLimitError, compose_checked

    try:
        root = compose_checked(text, file)
    except YamlLimitError as exc:
        raise ValidationError([Issue(Location(file, exc.line), exc.problem)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        raise ValidationError([Issue(Location(file, line), f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Issue(Location(file), f"not valid YAML: {exc}")]) from None
    return _Parser(file).pipeline(root)


class _Parser:
    """Walks composed YAML nodes, building values with the safe constructor."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1)

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_document(node)
        except yaml.YAMLError as exc:
            raise ValidationError([Issue(self.loc(node), f"not valid YAML: {exc}")]) from None

    def fail(self, node: yaml.Node | None, message: str) -> ValidationError:
        where = self.loc(node) if node is not None else Location(self.file)
        return ValidationError([Issue(where, message)])

    def mapping(
        self, node: yaml.Node, what: str, step: str | None = None
    ) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping node, merges (``<<``) resolved.

        ``step`` (the step's id) marks the mapping as that step's parameters, for messages.
        """
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping of keys to values")
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(self.value(key_node))
            if key in seen and step is not None:
                message = f"given twice (first at line {seen[key]})"
                raise ValidationError([Issue(self.loc(key_node), message, step=step, param=key)])
            if key in seen:
                raise self.fail(
                    key_node, f"{what}: duplicate key {key!r} (first at line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
        self.constructor.flatten_mapping(node)
        return [(str(self.value(k)), k, v) for k, v in node.value]

    def pipeline(self, root: yaml.Node | None) -> RawPipeline:
        if root is None:
            raise self.fail(None, "the pipeline file is empty; expected a mapping with 'steps:'")
        entries = self.mapping(root, "the pipeline file")
        found = {key: (key_node, value_node) for key, key_node, value_node in entries}
        unknown = {k: self.loc(kn) for k, (kn, _) in found.items() if k not in TOP_LEVEL_KEYS}
        if "steps" not in found:
            raise self.fail(root, "missing 'steps:' (a list of steps, each with 'id' and 'uses')")
        steps_node = found["steps"][1]
        if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
            raise self.fail(steps_node, "'steps' must be a non-empty list of steps")
        steps = tuple(self.step(i, node) for i, node in enumerate(steps_node.value))
        executor_node = found.get("executor", (None, None))[1]
        return RawPipeline(
            file=self.file,
            name=str(self.value(found["pipeline"][1]))
            if "pipeline" in found
            else Path(self.file).stem,
            description=str(self.value(found["description"][1])) if "description" in found else "",
            executor=self.value(executor_node) if executor_node is not None else None,
            executor_location=self.loc(executor_node)
            if executor_node is not None
            else Location(self.file),
            steps=steps,
            unknown_keys=unknown,
        )

    def step(self, index: int, node: yaml.Node) -> RawStep:
        entries = self.mapping(node, f"step #{index + 1}")
        ident = next((self.value(v) for k, _, v in entries if k == "id"), None)
        label = str(ident) if ident else f"#{index + 1}"
        fields: dict[str, Any] = {}
        key_locations: dict[str, Location] = {}
        unknown: dict[str, Location] = {}
        bad: list[Issue] = []
        params: dict[str, Any] = {}
        param_locations: dict[str, Location] = {}
        for key, key_node, value_node in entries:
            key_locations[key] = self.loc(key_node)
            if key not in STEP_KEYS:
                unknown[key] = self.loc(key_node)
            elif key == "with":
                if isinstance(value_node, yaml.ScalarNode) and self.value(value_node) is None:
                    continue  # `with:` left empty
                for name, name_node, param_node in self.mapping(value_node, "'with'", step=label):
                    params[name] = self.value(param_node)
                    param_locations[name] = self.loc(name_node)
            else:
                value = self.value(value_node)
                if not isinstance(value, str) or not value.strip():
                    bad.append(
                        Issue(
                            self.loc(key_node), f"'{key}' must be a non-empty string, got {value!r}"
                        )
                    )
                    continue
                fields[key] = value.strip()
        return RawStep(
            index=index,
            location=self.loc(node),
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
                [Issue(where, f"VALUE is not valid YAML ({_first_line(exc)})")]
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
            from pipelines.runner.registry import suggest

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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
