"""Command-line options generated from a pydantic parameter model, so a CLI and a stage share one schema.

Each field becomes ``--field-name`` with its type, choices (from a ``Literal``), help (its
description and default) and a ``None`` default, so only the options a user gave are passed on
and the model's own defaults apply to the rest. :class:`OneLineErrorParser` is the parser the
commands use: argparse's own usage errors as one line, like every other error.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NoReturn, get_args, get_origin

import pydantic
from pydantic_core import PydanticUndefined

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the message and where help is), not
    argparse's whole usage text before it; subcommands' parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model: type[pydantic.BaseModel],
    *,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> list[str]:
    """Add one option per field of ``model``; returns the field names added (in order)."""
    skipped, chosen = set(exclude), None if only is None else list(only)
    names = [n for n in (chosen or model.model_fields) if n not in skipped]
    for name in names:
        field = model.model_fields[name]
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": _help(field)}
        base = _without_none(field.annotation)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(base) is Literal:
            kwargs["choices"] = [str(choice) for choice in get_args(base)]
        elif base in (int, float, str):
            kwargs["type"] = base
            kwargs["metavar"] = {int: "N", float: "X", str: name.upper()}[base]
        parser.add_argument("--" + name.replace("_", "-"), **kwargs)
    return names


def given_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options the user gave (not ``None``), by field name."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def describe_error(
    exc: pydantic.ValidationError, *, flags: bool = False, values: Mapping[str, Any] | None = None
) -> str:
    """The first problem of a validation error as one line: ``tile: must be ..., got 5``.

    With ``flags`` the field is named as its command-line option (``--tile``).
    """
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    name = ("--" + loc.replace("_", "-")) if flags and loc else (loc or "value")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{name} {error['input']!r} is not one of {expected.replace(' or ', ', ')}"
    given = error.get("input") if values is None else values.get(loc, error.get("input"))
    if error["type"] in ("missing", "extra_forbidden") or isinstance(given, dict):
        return f"{name}: {message}"
    return f"{name}: {message[:1].lower()}{message[1:]}, got {given!r}"


def _help(field: pydantic.fields.FieldInfo) -> str:
    text = field.description or ""
    if field.default is not PydanticUndefined and field.default is not None:
        default = field.default
        text += f" (default: {default})"
    return text.replace("%", "%%")


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None`` / ``Optional[X]``; the annotation itself otherwise."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
