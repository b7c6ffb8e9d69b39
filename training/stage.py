"""The ``esrgan.train`` pipeline stage: an experiment file in, a trained model file out."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pipelines.api import StageParams, StageSpec
from training.errors import TrainingError


class TrainParams(StageParams):
    """Parameters of ``esrgan.train``; the experiment itself lives in its own YAML file."""

    config: str = Field(description="experiment YAML file (see the README's Training section)")
    resume: bool = Field(False, description="continue from the experiment's checkpoint")
    output_dir: str | None = Field(None, description="override the experiment's output_dir")
    iterations: int | None = Field(None, ge=1, description="override optim.iterations")
    pretrained: str | None = Field(
        None,
        description="override gan.pretrained, e.g. ${steps.<psnr step>.output}, for a gan stage",
    )
    progress: bool = Field(False, description="show the training progress bar")


def train_stage(params: TrainParams) -> str:
    """Run the experiment and return the exported generator's path (a model artefact)."""
    from training.config import load_config
    from training.loop import train

    overrides = (
        {"output_dir": str(Path(params.output_dir).resolve())} if params.output_dir else None
    )
    config = load_config(params.config, overrides)
    updates: dict[str, object] = {}
    if params.iterations is not None:
        updates["optim"] = config.optim.model_copy(update={"iterations": params.iterations})
    if params.pretrained is not None:
        if config.stage != "gan":
            raise TrainingError(
                f"{params.config}: pretrained applies to a gan stage, this is {config.stage!r}"
            )
        updates["gan"] = config.gan.model_copy(update={"pretrained": params.pretrained})
    if updates:
        config = config.model_copy(update=updates)
    return str(train(config, resume=params.resume, progress=params.progress).generator_path)


def stage_specs() -> list[StageSpec]:
    """The training stage, as the ``register_stages`` hook returns it."""
    return [
        StageSpec(
            id="esrgan.train",
            description="Train an ESRGAN model with the paper's two-stage recipe (stage psnr or gan, from an "
            "experiment YAML file) and produce the trained generator's .safetensors file as an artefact.",
            params=TrainParams,
            fn=train_stage,
            consumes=None,
            produces="artefact",
        )
    ]
