"""Reference documentation generated from the schemas: stages (with parameters) and hooks.

``python -m pipelines.docs`` rewrites the generated part of ``docs/pipelines.md``; a test checks
that the committed file matches, so a stage or hook without a description cannot slip in.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pipelines.runner.registry import StageRegistry, StageSpec

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m pipelines.docs) -->"
END = "<!-- END GENERATED REFERENCE -->"
DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "pipelines.md"
"""The README carries the same generated reference (the issue asks for it there too)."""


@dataclass(frozen=True)
class ParamDoc:
    """One parameter as documented: name, type, default (or required) and description."""

    name: str
    type: str
    default: str | None
    description: str


def describe_type(annotation: Any) -> str:
    """A short readable type: ``int | None``, ``'gaussian' | 'median'``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(describe_type(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def param_docs(model: type[BaseModel]) -> list[ParamDoc]:
    """The documented parameters of a stage's parameter model, in declaration order."""
    docs = []
    for name, field in model.model_fields.items():
        if field.is_required():
            default = None
        elif field.default is PydanticUndefined:
            default = "(computed)"
        else:
            default = repr(field.default)
        bounds = [
            f"{op} {getattr(m, attr)}"
            for m in field.metadata
            for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if getattr(m, attr, None) is not None
        ]
        kind = describe_type(field.annotation) + (f" ({', '.join(bounds)})" if bounds else "")
        docs.append(ParamDoc(name, kind, default, field.description or ""))
    return docs


def stage_summary(spec: StageSpec, plugin: str) -> dict[str, Any]:
    """A JSON-ready description of a stage (``pipelines stages --json``)."""
    return {
        "id": spec.id,
        "plugin": plugin,
        "description": spec.description,
        "consumes": spec.consumes,
        "produces": spec.produces,
        "params": spec.params.model_json_schema(),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_stage(spec: StageSpec, plugin: str) -> str:
    """Markdown for one stage: description, kinds, tiling needs, parameter table."""
    lines = [f"### `{spec.id}`", "", spec.description, ""]
    lines.append(
        f"Plugin `{plugin}`; consumes **{spec.consumes or 'nothing'}**, produces **{spec.produces or 'nothing (writes files)'}**."
    )
    if spec.consumes == "images" and spec.produces == "images":
        halo = "from its parameters" if callable(spec.halo) else f"{spec.halo} px"
        scale = "from its parameters" if callable(spec.scale) else f"x{spec.scale:g}"
        multiple = (
            ""
            if spec.multiple == 1
            else "; block starts on multiples "
            + ("from its parameters" if callable(spec.multiple) else f"of {spec.multiple} px")
        )
        lines.append(f"Halo {halo}; scale {scale}{multiple}.")
    lines += ["", "| parameter | type | default | description |", "| --- | --- | --- | --- |"]
    for p in param_docs(spec.params):
        default = "*required*" if p.default is None else f"`{_cell(p.default)}`"
        lines.append(f"| `{p.name}` | `{_cell(p.type)}` | {default} | {_cell(p.description)} |")
    return "\n".join(lines)


def render_hook_reference() -> str:
    """Markdown for every hook in :mod:`pipelines.hooks.specs`, from its signature and docstring."""
    from pipelines.hooks import specs as hookspecs

    parts = []
    for name, fn in hook_functions(hookspecs).items():
        signature = str(inspect.signature(fn)).replace("'", "")
        doc = inspect.cleandoc(fn.__doc__ or "")
        parts.append(f"### `{name}{signature}`\n\n{doc}")
    return "\n\n".join(parts)


def hook_functions(module: types.ModuleType) -> dict[str, Any]:
    """The hookspec functions of ``module`` (those carrying the pipelines hookspec marker)."""
    from pipelines.hooks.markers import PROJECT_NAME

    marker = f"{PROJECT_NAME}_spec"
    return {name: fn for name, fn in vars(module).items() if callable(fn) and hasattr(fn, marker)}


def render_stage_reference(registry: StageRegistry | None = None) -> str:
    """The generated reference: every installed stage, then every hook."""
    if registry is None:
        from pipelines.hooks.manager import build_registry, get_plugin_manager

        registry = build_registry(get_plugin_manager())
    stages = "\n\n".join(render_stage(spec, registry.plugin_of(spec.id)) for spec in registry)
    return f"## Stage reference\n\n{stages}\n\n## Hook reference\n\n{render_hook_reference()}\n"


def splice(document: str, generated: str) -> str:
    """``document`` with the text between the BEGIN/END markers replaced by ``generated``."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the document lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated part of docs/pipelines.md (or of the files given)."""
    args = sys.argv[1:] if argv is None else argv
    reference = render_stage_reference()
    for path in [Path(a) for a in args] or [DOC_PATH]:
        path.write_text(splice(path.read_text(encoding="utf-8"), reference), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
