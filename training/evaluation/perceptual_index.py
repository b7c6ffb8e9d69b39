"""Ma et al.'s no-reference score, needed for the perceptual index PI = ((10 - Ma) + NIQE) / 2.

Ma's metric is a trained regression model (random forests over DCT, wavelet and PCA features)
that is not available offline, and this project does not reimplement or imitate it. It is
computed by ``pyiqa``'s ``nrqm`` metric from a model file the user supplies (pyiqa's
``NRQM_model.mat``). Without such a file, evaluations report NIQE alone and say why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.errors import TrainingError

NO_MA_MODEL = (
    "the perceptual index needs Ma et al.'s trained model (pass --ma-model NRQM_model.mat, "
    "with pyiqa installed); it is not available offline, so NIQE is reported alone"
)


def ma_scorer(
    model_file: str | os.PathLike[str], crop_border: int = 0
) -> Callable[[np.ndarray], float]:
    """A function giving Ma's score of an 8-bit RGB image, from the user's model file."""
    path = Path(model_file)
    if not path.is_file():
        raise TrainingError(f"--ma-model {path}: no such file")
    try:
        import pyiqa  # type: ignore[import-not-found]
        import torch
    except ImportError:
        raise TrainingError(
            f"--ma-model {path}: Ma's score is computed by pyiqa, which is not installed "
            "(pip install pyiqa)"
        ) from None
    try:
        metric = pyiqa.create_metric(
            "nrqm", device="cpu", crop_border=crop_border, pretrained_model_path=str(path)
        )
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model file
        raise TrainingError(f"--ma-model {path}: pyiqa cannot load it ({exc})") from None

    def score(image: np.ndarray) -> float:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        tensor = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            return float(metric(tensor).item())

    return score
