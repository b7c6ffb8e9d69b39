"""The ``esrgan.sweep`` pipeline stage: a perception-distortion report as a pipeline's last step."""

from __future__ import annotations

from pipelines.api import StageSpec
from training.evaluation.sweep_params import SweepParams


def sweep_stage(params: SweepParams) -> str:
    """Run the sweep and return the report's index.html path (an artefact)."""
    from training.evaluation.run_sweep import sweep_report

    return str(sweep_report(params))


def stage_specs() -> list[StageSpec]:
    """The evaluation stages, as the ``register_stages`` hook returns them."""
    return [
        StageSpec(
            id="esrgan.sweep",
            description="Perception-distortion sweep (paper Fig. 10): interpolate two models of the same "
            "architecture at every alpha in memory, upscale and score every image (PSNR/SSIM/NIQE/LR "
            "consistency), and write results.csv/json, perception-distortion.png and a self-contained "
            "index.html; produces the index.html path as an artefact.",
            params=SweepParams,
            fn=sweep_stage,
            consumes=None,
            produces="artefact",
        )
    ]
