"""Checks a raw pipeline against the stage registry; every problem becomes a one-line issue.

Order of checks: file-level keys and executor, then each step (id, stage, parameters), then the
graph (inputs, references, kinds, cycles). All problems found are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from pipelines.config.loader import (
    STEP_KEYS,
    TOP_LEVEL_KEYS,
    Issue,
    Location,
    RawPipeline,
    RawStep,
    ValidationError,
)
from pipelines.config.schema import ExecutorConfig, Pipeline, Step, references_in
from pipelines.runner.registry import StageParams, StageRegistry, StageSpec, suggest

STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def validate(raw: RawPipeline, registry: StageRegistry) -> Pipeline:
    """A runnable :class:`Pipeline`, or :class:`ValidationError` listing every problem."""
    issues: list[Issue] = []
    for key, where in raw.unknown_keys.items():
        issues.append(Issue(where, f"unknown top-level key {key!r}{suggest(key, TOP_LEVEL_KEYS)}"))
    executor = _executor(raw, issues)
    specs = _check_steps(raw.steps, registry, issues)
    if issues:
        raise ValidationError(issues)
    steps = _check_graph(raw.steps, specs, issues)
    if issues or executor is None:
        raise ValidationError(issues)
    return Pipeline(raw.name, raw.file, tuple(steps), executor, raw.description)


def _executor(raw: RawPipeline, issues: list[Issue]) -> ExecutorConfig | None:
    try:
        return ExecutorConfig.model_validate(raw.executor)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            what = f"executor {field}" if field else "executor"
            issues.append(Issue(raw.executor_location, f"{what}: {_pydantic_message(error)}"))
        return None


# --------------------------------------------------------------------------- steps


def _check_steps(
    raw_steps: Sequence[RawStep], registry: StageRegistry, issues: list[Issue]
) -> dict[int, tuple[StageSpec, StageParams]]:
    """Per-step checks; returns the spec and validated params of every step that passed."""
    first_line: dict[str, Location] = {}
    checked: dict[int, tuple[StageSpec, StageParams]] = {}
    for raw in raw_steps:
        before = len(issues)
        issues.extend(raw.bad_values)
        for key, where in raw.unknown_keys.items():
            issues.append(
                Issue(where, f"unknown key {key!r}{suggest(key, STEP_KEYS)}", step=raw.label)
            )
        _check_id(raw, first_line, issues)
        spec = _check_uses(raw, registry, issues)
        if spec is None:
            continue
        params = _check_params(raw, spec, issues)
        if params is not None and len(issues) == before:
            checked[raw.index] = (spec, params)
    return checked


def _check_id(raw: RawStep, first_line: dict[str, Location], issues: list[Issue]) -> None:
    if raw.id is None:
        issues.append(
            Issue(
                raw.location,
                "the step has no 'id' (a short name other steps can refer to)",
                step=raw.label,
            )
        )
    elif not STEP_ID.match(raw.id):
        where = raw.key_locations.get("id", raw.location)
        issues.append(
            Issue(
                where,
                "step ids use letters, digits, '_' and '-' and start with a letter",
                step=raw.id,
            )
        )
    elif raw.id in first_line:
        where = raw.key_locations.get("id", raw.location)
        issues.append(
            Issue(where, f"duplicate step id (first used at {first_line[raw.id]})", step=raw.id)
        )
    else:
        first_line[raw.id] = raw.key_locations.get("id", raw.location)


def _check_uses(raw: RawStep, registry: StageRegistry, issues: list[Issue]) -> StageSpec | None:
    if raw.uses is None:
        issues.append(
            Issue(
                raw.location,
                "the step has no 'uses' (the stage to run, such as builtin.read)",
                step=raw.label,
            )
        )
        return None
    if raw.uses not in registry:
        where = raw.key_locations.get("uses", raw.location)
        hint = (
            suggest(raw.uses, registry.ids()) or "; `pipelines stages` lists the installed stages"
        )
        issues.append(Issue(where, f"unknown stage {raw.uses!r}{hint}", step=raw.label))
        return None
    return registry.get(raw.uses)


def _check_params(raw: RawStep, spec: StageSpec, issues: list[Issue]) -> StageParams | None:
    fields = spec.params.model_fields
    known: dict[str, Any] = {}
    ok = True
    for name, value in raw.params.items():
        if name in fields:
            known[name] = value
            continue
        ok = False
        hint = suggest(name, fields) or f"; {spec.id} takes {', '.join(fields) or 'no parameters'}"
        issues.append(
            Issue(
                raw.param_location(name), f"unknown parameter of {spec.id}{hint}", raw.label, name
            )
        )
    references = {name for name, value in known.items() if references_in(value)}
    concrete = {name: value for name, value in known.items() if name not in references}
    try:
        params = spec.params.model_validate(concrete if references else known)
    except pydantic.ValidationError as exc:
        errors = [e for e in exc.errors() if not _left_to_the_run(e, references)]
        for error in errors:
            field = str(error["loc"][0]) if error["loc"] else None
            issues.append(
                Issue(raw.param_location(field or ""), _pydantic_message(error), raw.label, field)
            )
        if errors or not references:
            return None
        params = None
    if references:
        # Checked again, whole, once the artefacts exist: a stage never sees a `${...}` string.
        params = spec.params.model_construct(**known)
    return params if ok else None


def _left_to_the_run(error: Mapping[str, Any], references: set[str]) -> bool:
    """An error about a parameter given as a reference (or about the whole model, which
    involves it): not decidable before the referenced artefact exists."""
    loc = error["loc"]
    return bool(references) and (not loc or str(loc[0]) in references)


def _pydantic_message(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "missing required parameter"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("value_error", "assertion_error"):
        return message
    return f"{message} (got {error.get('input')!r})"


# --------------------------------------------------------------------------- graph


def _check_graph(
    raw_steps: Sequence[RawStep],
    specs: Mapping[int, tuple[StageSpec, StageParams]],
    issues: list[Issue],
) -> list[Step]:
    """Resolve inputs and references, check kinds, and order the steps (refusing cycles)."""
    by_id = {raw.id: raw for raw in raw_steps if raw.id}
    steps: dict[str, Step] = {}
    for raw in raw_steps:
        spec, params = specs[raw.index]
        assert raw.id is not None
        input_id = _resolve_input(raw, spec, raw_steps, by_id, specs, issues)
        references = _resolve_references(raw, by_id, specs, issues)
        steps[raw.id] = Step(
            raw.id,
            spec,
            params,
            dict(raw.params),
            input_id,
            tuple(references),
            raw.location,
            raw.description,
        )
    if issues:
        return []
    return _topological_order(list(steps.values()), issues)


def _resolve_input(
    raw: RawStep,
    spec: StageSpec,
    raw_steps: Sequence[RawStep],
    by_id: Mapping[str, RawStep],
    specs: Mapping[int, tuple[StageSpec, StageParams]],
    issues: list[Issue],
) -> str | None:
    where = raw.key_locations.get("input", raw.location)
    if spec.consumes is None:
        if raw.input is not None:
            issues.append(
                Issue(
                    where, f"{spec.id} takes no input, but 'input: {raw.input}' is given", raw.label
                )
            )
        return None
    if raw.input is None:
        if raw.index == 0:
            issues.append(
                Issue(
                    raw.location,
                    f"{spec.id} needs {spec.consumes} as input, but it is the first step",
                    raw.label,
                )
            )
            return None
        source = raw_steps[raw.index - 1]
        implicit = True
    else:
        if raw.input not in by_id:
            hint = suggest(raw.input, [i for i in by_id if i != raw.id])
            issues.append(
                Issue(
                    where,
                    f"input refers to step {raw.input!r}, which does not exist{hint}",
                    raw.label,
                )
            )
            return None
        if raw.input == raw.id:
            issues.append(Issue(where, "a step cannot be its own input", raw.label))
            return None
        source = by_id[raw.input]
        implicit = False
    produced = specs[source.index][0].produces
    if produced != spec.consumes:
        what = "no output" if produced is None else produced
        fix = " (name the step to read from with 'input: <id>')" if implicit else ""
        which = "the previous step" if implicit else "its input"
        issues.append(
            Issue(
                where,
                f"{spec.id} consumes {spec.consumes}, but {which} {source.label!r} ({specs[source.index][0].id}) "
                f"produces {what}{fix}",
                raw.label,
            )
        )
        return None
    return source.id


def _resolve_references(
    raw: RawStep,
    by_id: Mapping[str, RawStep],
    specs: Mapping[int, tuple[StageSpec, StageParams]],
    issues: list[Issue],
) -> list[str]:
    found: list[str] = []
    spec_of_raw = specs[raw.index][0]
    for name, value in raw.params.items():
        for ref in references_in(value):
            where = raw.param_location(name)
            if ref not in by_id:
                hint = suggest(ref, [i for i in by_id if i != raw.id])
                issues.append(
                    Issue(
                        where,
                        f"${{steps.{ref}.output}} refers to a step that does not exist{hint}",
                        raw.label,
                        name,
                    )
                )
                continue
            if _plans_from_params(spec_of_raw):
                issues.append(
                    Issue(
                        where,
                        f"{spec_of_raw.id} plans its work from its parameters before anything runs, "
                        "so they cannot use ${steps.<id>.output} references",
                        raw.label,
                        name,
                    )
                )
                continue
            target = specs[by_id[ref].index][0]
            if target.produces != "artefact":
                what = "no output" if target.produces is None else target.produces
                issues.append(
                    Issue(
                        where,
                        f"${{steps.{ref}.output}}: step {ref!r} ({target.id}) produces {what}, "
                        "not an artefact",
                        raw.label,
                        name,
                    )
                )
                continue
            if ref not in found:
                found.append(ref)
    return found


def _plans_from_params(spec: StageSpec) -> bool:
    """Sources and sinks use their parameters while the graph is built, before artefacts exist."""
    return spec.produces is None or (spec.consumes is None and spec.produces == "images")


def _topological_order(steps: list[Step], issues: list[Issue]) -> list[Step]:
    """Steps so that each follows what it depends on, keeping file order where free (Kahn)."""
    pending = {s.id: set(s.depends_on) for s in steps}
    ordered: list[Step] = []
    while pending:
        ready = [s for s in steps if s.id in pending and not pending[s.id]]
        if not ready:
            cycle = _find_cycle(pending)
            first = next(s for s in steps if s.id == cycle[0])
            names = " -> ".join(repr(i) for i in [*cycle, cycle[0]])
            issues.append(
                Issue(
                    first.location,
                    f"the steps form a cycle {names}; "
                    "check their 'input:' and ${steps.<id>.output} references",
                    first.id,
                )
            )
            return []
        for step in ready:
            ordered.append(step)
            del pending[step.id]
            for deps in pending.values():
                deps.discard(step.id)
    return ordered


def _find_cycle(pending: Mapping[str, set[str]]) -> list[str]:
    """One cycle among steps that all still wait on something (each follows a dependency)."""
    path: list[str] = []
    node = next(iter(pending))
    while node not in path:
        path.append(node)
        node = sorted(pending[node])[0]
    return path[path.index(node) :]
