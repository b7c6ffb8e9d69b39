"""Runs a validated pipeline: one Dask graph for all steps and images, executed on its executor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import pluggy

from pipelines.config.schema import Pipeline, Step, substitute
from pipelines.errors import PipelineError
from pipelines.io.items import ImageItem
from pipelines.io.locks import run_locks
from pipelines.runner.blocks import BlockPlan, block_plan, map_image
from pipelines.runner.executors import session
from pipelines.runner.outputs import FollowUp, OutputStatus, artefact_files, artefact_value
from pipelines.runner.registry import StageParams
from pipelines.runner.summary import RunSummary, StepOutput
from pipelines.runner.tasks import StepError, building, building_pipeline, task

log = logging.getLogger(__name__)


class RunError(PipelineError):
    """A run that failed while executing (exit code 1)."""


@dataclass
class Graph:
    """The lazy outputs of every step, and the tasks whose results the run must compute."""

    images: dict[str, list[ImageItem]] = field(default_factory=dict)
    artefacts: dict[str, Any] = field(default_factory=dict)
    artefact_files: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, list[Any]] = field(default_factory=dict)


def run_pipeline(
    pipeline: Pipeline, pm: pluggy.PluginManager, progress: TextIO | None = None
) -> RunSummary:
    """Build the graph, execute it, call the lifecycle hooks, and summarise what was written.

    Two phases: the artefact steps (models, ...) are computed first, then the image graph is
    built with their values substituted, so every image step sees concrete parameters (known
    halo and scale) and no artefact task is embedded, and run again, inside the image graph.
    """
    hook = pm.hook
    hook.before_pipeline(pipeline=pipeline)
    start = time.perf_counter()
    try:
        with run_locks(), session(pipeline.executor, progress) as compute:
            graph = build_graph(pipeline, pm, phase="artefacts")
            made = compute([*graph.artefacts.values(), *graph.artefact_files.values()])
            values = dict(zip(graph.artefacts, made[: len(graph.artefacts)], strict=True))
            files = dict(zip(graph.artefact_files, made[len(graph.artefacts) :], strict=True))
            graph = build_graph(pipeline, pm, phase="images", artefacts=values)
            graph.artefact_files.update(files)
            report_outputs(graph, progress)
            results = dict(zip(graph.sinks, compute(list(graph.sinks.values())), strict=True))
            results = run_follow_ups(pipeline, results, compute)
    except StepError as exc:
        step = next((s for s in pipeline.steps if s.id == exc.step_id), None)
        if step is not None:
            hook.on_step_error(step=step, pipeline=pipeline, error=exc)
        raise
    except PipelineError:
        raise
    except Exception as exc:
        raise RunError(
            f"the run failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    seconds = time.perf_counter() - start
    summary = _summarise(pipeline, graph, {**values, **results}, seconds)
    for step, output in zip(pipeline.steps, summary.steps, strict=True):
        hook.after_step(step=step, pipeline=pipeline, output=output)
    hook.after_pipeline(pipeline=pipeline, summary=summary)
    return summary


def report_outputs(graph: Graph, progress: TextIO | None) -> None:
    """Say, before anything runs, how much of each output is already done and what is left."""
    if progress is None:
        return
    for entries in graph.sinks.values():
        for entry in entries:
            if isinstance(entry, OutputStatus):
                progress.write(entry.describe() + "\n")
    progress.flush()


def run_follow_ups(
    pipeline: Pipeline, results: dict[str, Any], compute: Callable[[list[Any]], list[Any]]
) -> dict[str, Any]:
    """Plan and compute the sinks' follow-up work (:class:`FollowUp`) until none is left."""
    steps = {s.id: s for s in pipeline.steps}
    while True:
        planned: dict[str, list[Any]] = {}
        for step_id, values in results.items():
            ups = [v for v in values if isinstance(v, FollowUp)]
            if not ups:
                continue
            step = steps[step_id]
            with building(step.id, step.uses):
                planned[step_id] = [entry for up in ups for entry in up.plan()]
        if not planned:
            return results
        computed = dict(zip(planned, compute(list(planned.values())), strict=True))
        results = {
            step_id: [v for v in values if not isinstance(v, FollowUp)] + computed.get(step_id, [])
            for step_id, values in results.items()
        }


def build_graph(
    pipeline: Pipeline,
    pm: pluggy.PluginManager,
    phase: str = "images",
    artefacts: Mapping[str, Any] | None = None,
) -> Graph:
    """Add the steps of one phase to a lazy graph, in execution order; nothing is computed here.

    ``phase="artefacts"`` adds the artefact-producing steps; ``phase="images"`` adds the others,
    with ``artefacts`` holding the computed artefact values.
    """
    graph = Graph()
    if artefacts is not None:
        graph.artefacts.update(artefacts)
    for step in pipeline.steps:
        is_artefact = step.spec.produces == "artefact"
        if is_artefact != (phase == "artefacts"):
            continue
        pm.hook.before_step(step=step, pipeline=pipeline)
        with building_pipeline(pipeline.name, pipeline.file), building(step.id, step.uses):
            try:
                _add_step(step, graph)
            except StepError:
                raise
            except Exception as exc:
                raise StepError.wrap(step.id, step.uses, exc) from exc
    if phase == "images":
        unused = [
            s.id
            for s in pipeline.steps
            if s.spec.produces == "images" and not _is_consumed(s, pipeline)
        ]
        for step_id in unused:
            log.warning(
                "the images of step %r are not used by any later step; they are not computed",
                step_id,
            )
    return graph


def _is_consumed(step: Step, pipeline: Pipeline) -> bool:
    return any(other.input == step.id for other in pipeline.steps)


def _add_step(step: Step, graph: Graph) -> None:
    spec = step.spec
    params = _params(step, graph)
    if spec.consumes is None and spec.produces == "images":
        items = list(spec.fn(_concrete(step, params)))
        if not items:
            raise PipelineError(f"step {step.id!r} ({spec.id}) found no images")
        graph.images[step.id] = items
    elif spec.consumes == "images" and spec.produces == "images":
        assert step.input is not None
        if isinstance(params, StageParams):
            params = spec.pinned(params)
        plan = _block_plan(step, params)
        record = step_record(step, params, plan)
        graph.images[step.id] = [
            map_image(item, step.id, spec.id, spec.fn, params, plan, record)
            for item in graph.images[step.input]
        ]
    elif spec.consumes == "images" and spec.produces is None:
        assert step.input is not None
        concrete = _concrete(step, params)
        graph.sinks[step.id] = list(spec.fn(graph.images[step.input], concrete))
    elif spec.produces == "artefact":
        args = (graph.artefacts[step.input],) if spec.consumes == "artefact" and step.input else ()
        produced = task(spec.fn, *args, params, name="artefact")  # a value, or an Artefact
        graph.artefacts[step.id] = task(artefact_value, produced, name="value")
        graph.artefact_files[step.id] = task(artefact_files, produced, name="files")
    else:
        raise PipelineError(
            f"step {step.id!r}: stage {spec.id} consumes {spec.consumes} and produces "
            f"{spec.produces}, which the runner does not know how to run"
        )


def _params(step: Step, graph: Graph) -> Any:
    """The step's parameters: the validated model, with artefact references resolved.

    Artefact values are concrete once the artefact phase has run; between artefact steps they
    are still tasks, so the resolution becomes a task too.
    """
    if not step.references:
        return step.params
    outputs = {ref: graph.artefacts[ref] for ref in step.references}
    if step.spec.produces != "artefact":
        return resolve_params(step.spec.params, step.raw_params, outputs)
    return task(resolve_params, step.spec.params, step.raw_params, outputs, name="params")


def resolve_params(
    model: type[StageParams], raw: Mapping[str, Any], outputs: Mapping[str, Any]
) -> StageParams:
    """Substitute artefact values into ``${steps.<id>.output}`` references and validate again."""
    return model.model_validate(substitute(dict(raw), outputs))


def _concrete(step: Step, params: Any) -> StageParams:
    if not isinstance(params, StageParams):
        raise PipelineError(
            f"step {step.id!r} ({step.uses}) plans its tasks from its parameters, so they "
            "cannot use ${steps.<id>.output} references"
        )
    return params


def _block_plan(step: Step, params: Any) -> BlockPlan:
    if not isinstance(params, StageParams):
        return BlockPlan(halo=None, scale=None)  # depends on an artefact made during the run
    return block_plan(step.spec, params)


def step_record(step: Step, params: Any, plan: BlockPlan) -> dict[str, Any]:
    """What a transform did to an image, JSON-ready (kept in Zarr outputs' attributes)."""
    concrete = isinstance(params, StageParams)
    values = params.model_dump(mode="json") if concrete else dict(step.raw_params)
    record: dict[str, Any] = {
        "step": step.id,
        "stage": step.uses,
        "params": values,
        "halo": plan.halo,
        "scale": plan.scale,
    }
    provenance = step.spec.provenance_for(params) if concrete else None
    if provenance is not None:
        record["provenance"] = provenance
    return record


def _summarise(
    pipeline: Pipeline, graph: Graph, results: Mapping[str, Any], seconds: float
) -> RunSummary:
    outputs = []
    for step in pipeline.steps:
        written: tuple[str, ...] = ()
        complete: tuple[str, ...] = ()
        artefact = None
        if step.id in graph.sinks:
            values = [p for value in results[step.id] for p in _as_list(value)]
            statuses = [v for v in values if isinstance(v, OutputStatus)]
            done = {s.path for s in statuses if s.complete}
            paths = (str(p) for p in values if not isinstance(p, OutputStatus))
            # each path once (a sink may return one from several tasks)
            written = tuple(p for p in dict.fromkeys(paths) if p not in done)
            complete = tuple(s.path for s in statuses if s.complete)
        if step.id in graph.artefacts:
            artefact = str(results[step.id])
            written = tuple(str(p) for p in graph.artefact_files.get(step.id, ()))
        images = len(graph.images.get(step.id, ()))
        outputs.append(
            StepOutput(step.id, step.uses, step.spec.produces, images, written, artefact, complete)
        )
    return RunSummary(pipeline.name, pipeline.executor.describe(), seconds, tuple(outputs))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
