"""The ``esrgan.sweep`` pipeline stage: a perception-distortion report as a pipeline's last step."""

from __future__ import annotations

from pipelines.api import Artefact, StageSpec
from training.evaluation.sweep_params import SweepParams


def sweep_stage(params: SweepParams) -> Artefact:
    """Run the sweep; the artefact is the report's index.html path, and the run's summary
    counts every file of the report."""
    from training.evaluation.report import FILES
    from training.evaluation.run_sweep import sweep_report

    index = sweep_report(params)
    return Artefact(str(index), tuple(str(index.parent / name) for name in FILES))


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
