"""Command-line and stage overrides of an experiment file: one definition for ``esrgan train``
and the ``esrgan.train`` stage."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from training.config import TrainConfig, load_config
from training.errors import TrainingError


class TrainOverrides(BaseModel):
    """Settings a run may change without editing its experiment file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: str | None = Field(
        None, description="override output_dir (relative to the current folder)"
    )
    iterations: int | None = Field(None, ge=1, description="override optim.iterations")
    pretrained: str | None = Field(
        None,
        description="override gan.pretrained (a gan stage), e.g. ${steps.<psnr step>.output}",
    )

    def apply(self, config: TrainConfig, source: str | os.PathLike[str]) -> TrainConfig:
        """``config`` with these overrides; ``source`` names the file in errors."""
        updates: dict[str, object] = {}
        if self.output_dir is not None:
            updates["output_dir"] = str(Path(self.output_dir).resolve())
        if self.iterations is not None:
            updates["optim"] = config.optim.model_copy(update={"iterations": self.iterations})
        if self.pretrained is not None:
            if config.stage != "gan":
                raise TrainingError(
                    f"{source}: pretrained applies to a gan stage, this is {config.stage!r}"
                )
            updates["gan"] = config.gan.model_copy(update={"pretrained": self.pretrained})
        return config.model_copy(update=updates) if updates else config


def load_with_overrides(
    path: str | os.PathLike[str], overrides: TrainOverrides | None = None
) -> TrainConfig:
    """Load an experiment file and apply ``overrides``."""
    config = load_config(path)
    return (overrides or TrainOverrides()).apply(config, path)


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per ``TrainOverrides`` field, typed, bounded and described by the model."""
    for name, field in TrainOverrides.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_field_parser(name),
            default=None,
            help=(field.description or "").replace("%", "%%"),
        )


def _field_parser(name: str) -> Callable[[str], object]:
    """An argparse ``type`` that validates one value against its ``TrainOverrides`` field."""

    def parse(text: str) -> object:
        try:
            return getattr(TrainOverrides.model_validate({name: text}), name)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(
                exc.errors()[0]["msg"].removeprefix("Value error, ")
            ) from None

    parse.__name__ = name  # argparse names the option's type in its message
    return parse


def overrides_from_args(args: argparse.Namespace) -> TrainOverrides:
    """The overrides given on the command line (already validated by their parsers)."""
    return TrainOverrides(**{name: getattr(args, name) for name in TrainOverrides.model_fields})
