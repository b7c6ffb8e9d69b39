"""The ``pipelines`` command: run, validate, stages, plugins.

Errors are printed as one line each on stderr (no traceback unless ``--debug``); exit code 2
for an invalid pipeline file, 1 for a failed run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import pluggy

from pipelines.config.arguments import OneLineErrorParser
from pipelines.config.loader import ValidationError, apply_overrides, load_config
from pipelines.config.schema import Pipeline
from pipelines.interrupts import exit_code, interrupts_as_exceptions, signal_name
from pipelines.runner.registry import StageRegistry
from pipelines.wording import counted

EXIT_RUN_ERROR = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    common = OneLineErrorParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser = OneLineErrorParser(
        prog="pipelines",
        description="Run YAML image pipelines made of plugin stages.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="validate and run a pipeline file")
    run.add_argument("file", metavar="FILE", help="pipeline YAML file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STEP.PARAM=VALUE",
        help="override a step parameter (VALUE is read as YAML); repeatable; executor=VALUE too",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--restart",
        action="store_true",
        help="start Zarr and video outputs over instead of resuming (sets restart: true on every step that has it)",
    )
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser(
        "validate", parents=[common], help="check a pipeline file without running it"
    )
    validate.add_argument("file", metavar="FILE")
    validate.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="STEP.PARAM=VALUE"
    )
    validate.set_defaults(func=cmd_validate)

    stages = sub.add_parser(
        "stages", parents=[common], help="list every installed stage and its parameters"
    )
    stages.add_argument(
        "--json", action="store_true", help="print JSON (with each parameter schema)"
    )
    stages.set_defaults(func=cmd_stages)

    plugins = sub.add_parser(
        "plugins", parents=[common], help="list the loaded plugins and their hooks"
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmd_plugins)
    return parser


OPENMP_WAIT_POLICY = "PASSIVE"
"""Default ``OMP_WAIT_POLICY`` of a run (and of the worker processes it starts): OpenMP threads
that sleep instead of spinning, which on a shared or oversubscribed machine was 2.6-30x faster
for torch-based stages and costs nothing measurable otherwise (docs/benchmarks.md). Set the
variable to override it; it must be set before a plugin loads its OpenMP runtime."""


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", OPENMP_WAIT_POLICY)
    args = build_parser().parse_args(argv)
    _configure_logging(args.debug)
    try:
        with interrupts_as_exceptions():
            return int(args.func(args) or 0)
    except ValidationError as exc:
        if args.debug:
            raise
        for issue in exc.issues:
            print(f"pipelines: error: {issue}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt as exc:
        print(
            f"pipelines: interrupted ({signal_name(exc)}); finished outputs are kept; "
            "run it again to resume Zarr and video outputs",
            file=sys.stderr,
        )
        return exit_code(exc)
    except Exception as exc:
        if args.debug:
            raise
        from pipelines.errors import PipelineError

        text = " ".join(str(exc).split())
        prefix = "" if isinstance(exc, PipelineError) else f"{type(exc).__name__}: "
        print(f"pipelines: error: {prefix}{text}", file=sys.stderr)
        return EXIT_RUN_ERROR


def _configure_logging(debug: bool) -> None:
    """One stderr handler; libraries that log at INFO (distributed) stay quiet unless --debug."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "pipelines-cli"]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler.set_name("pipelines-cli")
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler.setFormatter(
        logging.Formatter("pipelines: %(name)s: %(message)s" if debug else "pipelines: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def _load(args: argparse.Namespace) -> tuple[Pipeline, pluggy.PluginManager]:
    from pipelines.config.validation import validate
    from pipelines.hooks.manager import build_registry, get_plugin_manager

    pm = get_plugin_manager()
    registry = build_registry(pm)
    raw = load_config(args.file)
    overrides = list(args.overrides)
    if getattr(args, "restart", False):
        overrides = [
            f"{s.id}.restart=true"
            for s in raw.steps
            if s.id and _has_param(registry, s.uses, "restart")
        ] + overrides
    return validate(apply_overrides(raw, overrides), registry), pm


def _has_param(registry: StageRegistry, stage_id: str | None, name: str) -> bool:
    return (
        stage_id is not None
        and stage_id in registry
        and name in registry.get(stage_id).params.model_fields
    )


def cmd_validate(args: argparse.Namespace) -> int:
    pipeline, _ = _load(args)
    order = " -> ".join(f"{s.id} ({s.uses})" for s in pipeline.steps)
    steps = counted(len(pipeline.steps), "step")
    print(f"{args.file}: ok, {steps} on {pipeline.executor.describe()}: {order}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.runner.run import run_pipeline

    pipeline, pm = _load(args)
    summary = run_pipeline(pipeline, pm, progress=None if args.quiet else sys.stderr)
    written, complete, artefacts = summary.written, summary.complete, summary.artefacts
    if complete and not written and not artefacts:
        print(f"{pipeline.name}: nothing to do, already complete:")
    else:
        done = [f"wrote {counted(len(written), 'file')}"] if written or not artefacts else []
        if artefacts:
            done.append(f"made {counted(len(artefacts), 'artefact')}")
        print(
            f"{pipeline.name}: {' and '.join(done)} in {summary.seconds:.1f} s on {summary.executor}"
        )
    for path in written:
        print(f"  {path}")
    if complete and written:
        print("already complete (nothing written):")
    for path in complete:
        print(f"  {path}")
    if artefacts:
        print("artefacts:")
    for step_id, value in artefacts.items():
        print(f"  {step_id}: {value}")
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from pipelines.docs import param_docs, stage_summary
    from pipelines.hooks.manager import build_registry, get_plugin_manager

    registry = build_registry(get_plugin_manager())
    if args.json:
        print(json.dumps([stage_summary(s, registry.plugin_of(s.id)) for s in registry], indent=2))
        return 0
    for spec in registry:
        flow = f"{spec.consumes or '-'} -> {spec.produces or '-'}"
        print(f"{spec.id}  [{registry.plugin_of(spec.id)}]  {flow}")
        print(f"    {spec.description}")
        for p in param_docs(spec.params):
            default = "required" if p.default is None else f"default {p.default}"
            print(f"    {p.name}: {p.type}, {default}: {p.description}")
        print()
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from pipelines.hooks.manager import get_plugin_manager, plugin_infos

    infos = plugin_infos(get_plugin_manager())
    if args.json:
        print(json.dumps([info.__dict__ for info in infos], indent=2))
        return 0
    for info in infos:
        print(
            f"{info.name}  {info.distribution} {info.version}  hooks: {', '.join(info.hooks) or '-'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
