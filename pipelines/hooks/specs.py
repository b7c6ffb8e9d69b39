"""The hooks a plugin may implement. Every hook is optional; all are called in the host process.

A Dask graph runs the steps of a pipeline interleaved (image 2 may be read while image 1 is
upscaled), so the step hooks bracket a step's place in the graph: ``before_step`` while the
graph is built, ``after_step`` once the whole graph has run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.hooks.markers import hookspec

if TYPE_CHECKING:
    from pipelines.config.schema import Pipeline, Step
    from pipelines.runner.registry import StageSpec
    from pipelines.runner.summary import RunSummary, StepOutput


@hookspec
def register_stages() -> list[StageSpec]:
    """Return the plugin's stage specifications (a list of :class:`~pipelines.runner.registry.StageSpec`).

    Called once when a registry is built; the results of all plugins are merged and a stage id
    registered twice is an error. Return an empty list to register nothing.
    """


@hookspec
def before_pipeline(pipeline: Pipeline) -> None:
    """Called once a pipeline has been validated, before its Dask graph is built.

    ``pipeline`` is the validated :class:`~pipelines.config.schema.Pipeline` (steps in execution order,
    typed parameters, executor). Raising here aborts the run before anything executes.
    """


@hookspec
def before_step(step: Step, pipeline: Pipeline) -> None:
    """Called as the runner adds ``step`` (a :class:`~pipelines.config.schema.Step`) to the graph.

    ``pipeline`` is the pipeline being built. Nothing has executed yet: use it to log the plan
    or to check resources the step needs.
    """


@hookspec
def after_step(step: Step, pipeline: Pipeline, output: StepOutput) -> None:
    """Called for every ``step`` of ``pipeline``, in execution order, once the whole graph has run.

    ``output`` is a :class:`~pipelines.runner.summary.StepOutput`: the step's kind of output, the
    number of images it produced, and the files or artefact values it wrote.
    """


@hookspec
def on_step_error(step: Step, pipeline: Pipeline, error: BaseException) -> None:
    """Called when a task of ``step`` raised ``error`` (during graph building or execution).

    ``pipeline`` is the pipeline that was running; no later hook is called for it. The runner raises its own one-line error afterwards; the hook is for logging and clean-up.
    """


@hookspec
def after_pipeline(pipeline: Pipeline, summary: RunSummary) -> None:
    """Called once after ``pipeline`` ran successfully.

    ``summary`` (a :class:`~pipelines.runner.summary.RunSummary`) lists every file and artefact written and the wall-clock time of the run.
    """
