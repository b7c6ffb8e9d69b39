"""Safe YAML loading that remembers where every value came from, for line-numbered errors.

``load_yaml`` parses with PyYAML's safe loader (no arbitrary Python objects) and returns the
data plus a ``Locations`` map from key paths like ``("steps", 2, "with", "sigma")`` to line
numbers, so validation errors can say ``pipeline.yaml:14``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import PipelineError

KeyPath = tuple[str | int, ...]


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers: ``5:10`` is the text "5:10", not 310.

    (YAML 1.2 dropped them; a range such as ``z: 5:10`` must stay a range.)
    """


_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
SafeLoader.yaml_implicit_resolvers = {
    first: ([("tag:yaml.org,2002:str", _BASE60)] if first in "+-0123456789" else []) + list(rules)
    for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader: no Python objects


class YamlError(PipelineError):
    """A file that is not valid YAML, with file and line."""


class YamlLimitError(YamlError):
    """A document over a safety limit (nesting depth, alias expansion); ``line`` where known."""

    def __init__(self, name: str, line: int | None, problem: str) -> None:
        self.line, self.problem = line, problem
        super().__init__(f"{name}:{line}: {problem}" if line else f"{name}: {problem}")


@dataclass(frozen=True)
class Locations:
    """Line numbers (1-based) of the values of a YAML document, by key path."""

    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def where(self, path: Sequence[str | int]) -> str:
        """``file:line`` for ``path`` (``file`` alone when unknown)."""
        line = self.line(path)
        return f"{self.file}:{line}" if line else self.file


def load_yaml(path: str | os.PathLike[str]) -> tuple[Any, Locations]:
    """Parse ``path`` safely; return its data and the line of every value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(f"{path}: cannot read file ({exc})") from None
    return parse_yaml(text, str(path))


MAX_DEPTH = 64
"""Deepest nesting of lists and mappings accepted (deeper documents are refused, not recursed into)."""

MAX_VALUES = 1_000_000
"""Most values a document may hold once its aliases are expanded (a guard against alias bombs)."""


def compose_checked(text: str, name: str) -> yaml.Node | None:
    """Compose ``text`` safely, refusing very deep nesting and alias bombs before building values.

    PyYAML's composer recurses once per nesting level and aliases share nodes, so a short file
    could otherwise exhaust the stack or expand to billions of values.
    """
    depth = 0
    for event in yaml.parse(text, Loader=SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise YamlLimitError(name, line, f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    node = yaml.compose(text, Loader=SafeLoader)
    if node is not None:
        total = _expanded_size(node, {})
        if total > MAX_VALUES:
            raise YamlLimitError(
                name,
                None,
                f"aliases expand to over {MAX_VALUES} values (an alias bomb?)",
            )
    return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values under ``node`` with every alias expanded; memoised per node, so linear in the file."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once, not forever
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(total, MAX_VALUES + 1)
    return total


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, Locations]:
    """Like :func:`load_yaml` for a string; ``name`` is used in messages."""
    try:
        node = compose_checked(text, name)
        data = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(f"{where}: not valid YAML: {problem}") from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _collect(node, (), lines, name, set())
    return data, Locations(name, lines)


def _collect(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], name: str, seen: set[int]
) -> None:
    lines[path] = node.start_mark.line + 1
    if id(node) in seen:  # an alias: its values keep the lines of the anchored original
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_line and key != "<<":
                raise YamlError(
                    f"{name}:{line}: key {key!r} given twice (first at line {first_line[key]})"
                )
            first_line[key] = line
            _collect(value_node, (*path, key), lines, name, seen)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect(item, (*path, index), lines, name, seen)
