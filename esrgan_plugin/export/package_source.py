"""One self-contained Python file with a network's architecture, for ``pytorch_state_dict`` weights.

bioimage.io's ``pytorch_state_dict`` weights name a source file and a callable that builds the
network from plain keyword arguments (``architecture.kwargs`` in ``rdf.yaml``). Our networks
take a configuration dataclass and may import helpers from other project modules, so the file
is assembled from the project's own source: the network's module, the modules it imports from
this project (dependencies first, their project imports removed), and a generated
``build_network(**config)`` function. It is possible when every other import is the standard
library or torch and no top-level name is defined twice; :func:`architecture_source` says why
when it is not (a network from a third-party package, for instance), and the package is then
made without ``pytorch_state_dict`` weights.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_PACKAGE = "esrgan_plugin"

ALLOWED_IMPORTS = frozenset(
    {"__future__", "collections", "dataclasses", "functools", "itertools", "math", "typing"}
    | {"torch"}
)
"""Top-level packages the generated file may import (the standard library's and torch)."""

BUILDER = "build_network"
"""The callable ``rdf.yaml`` names: builds the network from the configuration's fields."""


class SourceUnavailable(Exception):
    """The architecture cannot be written as one self-contained file (the reason is the message)."""


@dataclass(frozen=True)
class ArchitectureSource:
    """The generated file's text, its callable and the keyword arguments that rebuild the network."""

    text: str
    callable: str
    kwargs: dict[str, Any]
    modules: tuple[str, ...]
    """The project modules the text was assembled from, in order."""


def architecture_source(
    network_class: type, config_class: type, config: Any, wrapper: type | None = None
) -> ArchitectureSource:
    """The self-contained source of ``network_class`` built from ``config`` (wrapped in ``wrapper``).

    Raises :class:`SourceUnavailable` naming why the file cannot be self-contained.
    """
    roots = [network_class.__module__, config_class.__module__]
    if wrapper is not None:
        roots.append(wrapper.__module__)
    order: list[str] = []
    for root in roots:
        _collect(root, order, ())
    parts = [_module_body(name) for name in order]
    _check_unique_names(order, parts)
    kwargs = _plain_kwargs(config)
    network = f"{network_class.__name__}({config_class.__name__}(**config))"
    built = f"{wrapper.__name__}({network})" if wrapper is not None else network
    header = (
        f'"""{network_class.__name__} as built by esrgan-pipelines, in one file for bioimage.io.\n\n'
        f"Assembled from the project modules {', '.join(order)}; "
        f"``{BUILDER}(**kwargs)`` builds the network.\n"
        '"""\n\nfrom __future__ import annotations\n'
    )
    builder = (
        f"\n\ndef {BUILDER}(**config):\n"
        f'    """The network of this package from its configuration (rdf.yaml\'s kwargs)."""\n'
        f"    return {built}\n"
    )
    text = (
        header
        + "".join(f"\n\n# ---- from {n}\n{p}" for n, p in zip(order, parts, strict=True))
        + builder
    )
    return ArchitectureSource(text, BUILDER, kwargs, tuple(order))


def _plain_kwargs(config: Any) -> dict[str, Any]:
    values = config.to_dict()
    if not isinstance(values, Mapping) or not all(
        isinstance(v, (int, float, str, bool)) for v in values.values()
    ):
        raise SourceUnavailable(f"the configuration {values!r} is not plain numbers and strings")
    return dict(values)


def _collect(name: str, order: list[str], stack: tuple[str, ...]) -> None:
    """Add ``name`` and the project modules it imports to ``order``, dependencies first."""
    if name in order:
        return
    if name in stack:
        raise SourceUnavailable(f"the modules {' -> '.join((*stack, name))} import each other")
    for dependency in _project_imports(name):
        _collect(dependency, order, (*stack, name))
    order.append(name)


def _tree(name: str) -> tuple[ast.Module, str]:
    module = sys.modules.get(name) or importlib.import_module(name)
    path = inspect.getsourcefile(module)
    if path is None:
        raise SourceUnavailable(f"the source of {name} is not available")
    text = Path(path).read_text()
    return ast.parse(text, filename=path), text


def _project_imports(name: str) -> list[str]:
    """The project modules ``name`` imports; any import other than those allowed is refused."""
    tree, _ = _tree(name)
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise SourceUnavailable(f"{name} uses a relative import")
            module = node.module or ""
        elif isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == PROJECT_PACKAGE for alias in node.names):
                raise SourceUnavailable(f"{name} imports a project module as a whole")
            _check_allowed(name, [alias.name for alias in node.names])
            continue
        else:
            continue
        if module.split(".")[0] == PROJECT_PACKAGE:
            if any(alias.asname not in (None, alias.name) for alias in node.names):
                raise SourceUnavailable(f"{name} renames what it imports from {module}")
            found.append(_defining_module(module, [a.name for a in node.names]))
        else:
            _check_allowed(name, [module])
    for inner in ast.walk(tree):  # imports inside functions would escape the file
        if isinstance(inner, (ast.Import, ast.ImportFrom)) and inner not in tree.body:
            raise SourceUnavailable(f"{name} imports inside a function or class")
    return found


def _check_allowed(name: str, modules: list[str]) -> None:
    for module in modules:
        if module.split(".")[0] not in ALLOWED_IMPORTS:
            raise SourceUnavailable(f"{name} imports {module}, which the package cannot carry")


def _defining_module(module: str, names: list[str]) -> str:
    """The module that defines ``names`` (a package's ``__init__`` re-export resolved)."""
    imported = importlib.import_module(module)
    owners = {getattr(getattr(imported, n), "__module__", module) for n in names}
    owners = {o if o.split(".")[0] == PROJECT_PACKAGE else module for o in owners}
    if len(owners) != 1:
        raise SourceUnavailable(f"the names {names} from {module} come from several modules")
    return owners.pop()


def _module_body(name: str) -> str:
    """The module's text without its docstring and its ``__future__`` and project imports."""
    tree, text = _tree(name)
    lines = text.splitlines()
    drop: set[int] = set()
    for index, node in enumerate(tree.body):
        docstring = (
            index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        project = isinstance(node, ast.ImportFrom) and (
            node.module == "__future__" or (node.module or "").split(".")[0] == PROJECT_PACKAGE
        )
        if docstring or project:
            assert node.end_lineno is not None
            drop.update(range(node.lineno - 1, node.end_lineno))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    return "\n".join(kept).strip() + "\n"


def _check_unique_names(order: list[str], parts: list[str]) -> None:
    """Refuse two modules that define the same top-level name (one would shadow the other)."""
    seen: dict[str, str] = {}
    for name, part in zip(order, parts, strict=True):
        for node in ast.parse(part).body:
            for defined in _defined_names(node):
                if defined in seen and seen[defined] != name:
                    raise SourceUnavailable(
                        f"{defined} is defined in both {seen[defined]} and {name}"
                    )
                seen[defined] = name


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    return []
