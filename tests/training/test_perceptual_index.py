"""The perceptual-index switch: the glue to pyiqa's Ma score, checked with a stand-in module.

Ma's trained model is not available offline, so these tests replace ``pyiqa`` with a recording
stand-in: they check what is passed to it and how PI is formed, not Ma's metric itself.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from training.errors import TrainingError
from training.evaluation.measures import MeasureContext, compute
from training.evaluation.niqe import load_niqe_model, niqe
from training.evaluation.perceptual_index import ma_scorer


class _StandIn:
    """Records its creation arguments and inputs; returns a fixed 'Ma score'."""

    def __init__(self, score: float) -> None:
        self.score = score
        self.created: dict[str, object] = {}
        self.inputs: list[torch.Tensor] = []

    def create_metric(self, name: str, **kwargs: object) -> object:
        self.created = {"name": name, **kwargs}

        def metric(tensor: torch.Tensor) -> torch.Tensor:
            self.inputs.append(tensor)
            return torch.tensor([self.score])

        return metric


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> _StandIn:
    fake = _StandIn(6.5)
    module = types.ModuleType("pyiqa")
    module.create_metric = fake.create_metric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyiqa", module)
    return fake


def _image() -> np.ndarray:
    import cv2

    rng = np.random.default_rng(0)
    big = cv2.resize(rng.normal(size=(25, 25, 3)), (200, 200), interpolation=cv2.INTER_CUBIC)
    return np.clip(128 + 50 * big + 8 * rng.normal(size=big.shape), 0, 255).astype(np.uint8)


def test_pi_combines_ma_and_niqe(stand_in: _StandIn, tmp_path: Path) -> None:
    model = tmp_path / "NRQM_model.mat"
    model.write_bytes(b"user supplied")
    image = _image()
    context = MeasureContext(4, load_niqe_model(), ma_scorer(model, crop_border=4))
    pi = compute("pi", image, context)
    assert pi == pytest.approx(((10 - 6.5) + niqe(image, 4)) / 2)
    assert stand_in.created == {
        "name": "nrqm",
        "device": "cpu",
        "crop_border": 4,
        "pretrained_model_path": str(model),
    }
    (tensor,) = stand_in.inputs
    assert tensor.shape == (1, 3, 200, 200) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor[0].permute(1, 2, 0).numpy() * 255, image, atol=1e-4)


def test_a_model_file_pyiqa_cannot_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(name: str, **kwargs: object) -> object:
        raise KeyError("model")

    module = types.ModuleType("pyiqa")
    module.create_metric = refuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyiqa", module)
    model = tmp_path / "bad.mat"
    model.write_bytes(b"x")
    with pytest.raises(TrainingError, match=r"--ma-model .*bad.mat: pyiqa cannot load it"):
        ma_scorer(model)
