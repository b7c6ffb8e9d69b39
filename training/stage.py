"""The ``esrgan.train`` pipeline stage: an experiment file in, a trained model file out."""

from __future__ import annotations

from pydantic import Field

from pipelines.api import StageParams, StageSpec
from training.errors import TrainingError
from training.overrides import TrainOverrides
from training.prepare_options import PrepareOptions


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


class PrepareDataParams(StageParams, PrepareOptions):
    """Parameters of ``esrgan.prepare_data``: the HR folder, the output store, how to cut."""

    hr_dir: str = Field(description="folder of HR images (searched recursively)")
    output: str = Field(description="the Zarr store to write (DATA.zarr)")
    executor: str = Field(
        "threads", description="threads, processes (a LocalCluster) or tcp://host:8786"
    )
    overwrite: bool = Field(False, description="replace a store prepared differently")


def prepare_data_stage(params: PrepareDataParams) -> str:
    """Prepare (or resume) the store and return its path (an artefact a train step can use)."""
    from training.prepare import prepare_dataset

    options = PrepareOptions(**{k: getattr(params, k) for k in PrepareOptions.model_fields})
    prepare_dataset(params.hr_dir, params.output, options, params.executor, params.overwrite)
    return params.output


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
        ),
        StageSpec(
            id="esrgan.prepare_data",
            description="Cut HR images into sub-images (BasicSR's extract_subimages: crop, step, "
            "thresh_size) with MATLAB-bicubic LR counterparts into one checksummed, resumable Zarr "
            "store for training (kind: zarr); one Dask task per image.",
            params=PrepareDataParams,
            fn=prepare_data_stage,
            consumes=None,
            produces="artefact",
        ),
    ]
