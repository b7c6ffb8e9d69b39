"""The one YAML loader: safe, parsed once, every value's line remembered, duplicate keys refused.

``parse_yaml`` composes the text with PyYAML's safe loader (no Python objects), refuses keys
given twice in one mapping (``safe_load`` would silently keep the last; merge keys ``<<`` may
be overridden as YAML intends), builds the values from the same node tree, and returns them
with a :class:`Locations` map from key paths such as ``("steps", 2, "with", "sigma")`` to
lines, so every later error can say ``pipeline.yaml:14``. Pipelines and training experiments
both load through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import PipelineError, first_line

KeyPath = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    """``yaml.safe_load`` with :class:`SafeLoader` (for one value, such as a ``--set`` option)."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - SafeLoader: no Python objects


@dataclass(frozen=True)
class YamlProblem:
    """One problem of a YAML file: where (line, key path) and what."""

    file: str
    line: int | None
    message: str
    path: KeyPath = ()

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class YamlError(PipelineError):
    """A file that is not valid YAML (or repeats a key); one line per problem, with file and line."""

    def __init__(self, problems: Sequence[YamlProblem] | str, document: Any = None) -> None:
        self.document = document
        """The data as far as it could be built (e.g. with the last of repeated keys), or None."""
        self.problems: tuple[YamlProblem, ...] = (
            (YamlProblem("<yaml>", None, problems),)
            if isinstance(problems, str)
            else tuple(problems)
        )
        super().__init__("\n".join(str(problem) for problem in self.problems))


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


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or a one-line :class:`YamlError` saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(str(path), None, "no such file") from None
    except UnicodeDecodeError:
        raise _error(str(path), None, "not a YAML file (not UTF-8 text)") from None
    except OSError as exc:
        raise _error(str(path), None, f"cannot read file ({exc.strerror or exc})") from None


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
                mark = event.start_mark
                line = mark.line + 1 if mark is not None else None
                raise _error(name, line, f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    node = yaml.compose(text, Loader=SafeLoader)
    if node is not None and _expanded_size(node, {}) > MAX_VALUES:
        raise _error(name, None, f"aliases expand to over {MAX_VALUES} values (an alias bomb?)")
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


def load_yaml(path: str | os.PathLike[str]) -> tuple[Any, Locations]:
    """Parse the file at ``path``; return its data and the line of every value."""
    return parse_yaml(read_text(path), str(path))


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, Locations]:
    """Parse ``text`` once; ``name`` is used in messages. Raises :class:`YamlError`."""
    try:
        node = compose_checked(text, name)
        if node is None:
            return None, Locations(name, {})
        duplicates = _duplicate_keys(node, name, ())
        data = SafeLoader("").construct_document(node)  # resolves merge keys in the nodes
        if duplicates:
            raise YamlError(duplicates, document=data)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        raise _error(name, line, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise _error(name, None, f"not valid YAML: {first_line(exc)}") from None
    except RecursionError:
        raise _error(name, None, "not valid YAML: nested too deeply") from None
    lines: dict[KeyPath, int] = {}
    _collect(node, (), lines, set())
    return data, Locations(name, lines)


def _duplicate_keys(
    node: yaml.Node, name: str, path: KeyPath, seen: set[int] | None = None
) -> list[YamlProblem]:
    """Every key given twice in one mapping (``key 'x' given twice (first at line N)``), in order."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already checked
        return []
    seen.add(id(node))
    problems: list[YamlProblem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key_node.tag != _MERGE_TAG:
                line = key_node.start_mark.line + 1
                if key in first:
                    message = f"key {key!r} given twice (first at line {first[key]})"
                    problems.append(YamlProblem(name, line, message, (*path, key)))
                else:
                    first[key] = line
            problems += _duplicate_keys(value_node, name, (*path, str(key)), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, name, (*path, index), seen)
    return problems


def _error(file: str, line: int | None, message: str) -> YamlError:
    return YamlError([YamlProblem(file, line, message)])


def _collect(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], active: set[int]) -> None:
    """Record the line of ``node`` and of everything below it (merged keys at their source)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in active or len(path) > 200:  # a recursive alias; or absurd depth
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = _key_value(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _collect(value_node, (*path, key), lines, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect(item, (*path, index), lines, active)
    active.discard(id(node))


def _key_value(node: yaml.ScalarNode) -> str | int:
    """A mapping key as the constructed data has it (ints stay ints, the rest are strings)."""
    value = SafeLoader("").construct_object(node)
    return value if isinstance(value, int) and not isinstance(value, bool) else str(node.value)
