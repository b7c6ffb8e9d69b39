"""The ``esrgan.train`` pipeline stage: an experiment file in, a trained model file out."""

from __future__ import annotations

from pydantic import Field

from pipelines.api import StageParams, StageSpec
from training.errors import TrainingError
from training.overrides import TrainOverrides


class TrainParams(StageParams, TrainOverrides):
    """Parameters of ``esrgan.train``: the experiment file, and the overrides ``esrgan train`` has."""

    config: str = Field(description="experiment YAML file (see the README's Training section)")
    resume: bool = Field(False, description="continue from the experiment's checkpoint")
    progress: bool = Field(False, description="show the training progress bar")


def train_stage(params: TrainParams) -> str:
    """Run the experiment and return the exported generator's path (a model artefact)."""
    from training.loop import train
    from training.overrides import load_with_overrides

    overrides = TrainOverrides(**{k: getattr(params, k) for k in TrainOverrides.model_fields})
    config = load_with_overrides(params.config, overrides)
    result = train(config, resume=params.resume, progress=params.progress)
    if result.interrupted_by is not None:
        raise TrainingError(
            f"{params.config}: stopped by {result.interrupted_by} at iteration "
            f"{result.iteration}; checkpoint written, run again with resume: true"
        )
    return str(result.generator_path)


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
