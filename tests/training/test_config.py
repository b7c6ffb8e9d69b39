"""Experiment YAML: paper defaults, stage-dependent defaults, line-numbered one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import load_config
from training.errors import TrainingError

MINIMAL = """\
name: t
stage: {stage}
output_dir: run
data:
  train: {{kind: folder, path: imgs}}
optim:
  iterations: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_paper_defaults_for_each_stage(tmp_path: Path) -> None:
    psnr = load_config(write(tmp_path, MINIMAL.format(stage="psnr")))
    assert psnr.optim.lr == 2e-4 and psnr.optim.milestones == [200_000, 400_000, 600_000, 800_000]
    assert psnr.optim.betas == (0.9, 0.999) and psnr.optim.gamma == 0.5
    assert (psnr.data.hr_size, psnr.data.batch_size) == (128, 16)
    assert (psnr.model.num_features, psnr.model.num_blocks, psnr.model.growth_channels) == (
        64,
        23,
        32,
    )
    gan = load_config(write(tmp_path, MINIMAL.format(stage="gan")))
    assert gan.optim.lr == 1e-4 and gan.optim.milestones == [50_000, 100_000, 200_000, 300_000]
    assert (gan.gan.gan_weight, gan.gan.pixel_weight, gan.gan.perceptual_weight) == (
        5e-3,
        1e-2,
        1.0,
    )
    assert gan.gan.perceptual_layers == {"conv5_4": 1.0}
    assert psnr.resolve("run") == tmp_path / "run"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.format(stage="psnr").replace("iterations: 10", "iterations: -1"),
            r"exp.yaml:7: field optim.iterations: .*greater than or equal to 1",
        ),
        (
            MINIMAL.format(stage="psnr").replace("stage: psnr", "stage: warmup"),
            r"exp.yaml:2: field stage: Input should be 'psnr' or 'gan'",
        ),
        (
            MINIMAL.format(stage="psnr") + "learning_rate: 3\n",
            r"exp.yaml:8: field learning_rate: Extra inputs are not permitted",
        ),
        (
            MINIMAL.format(stage="psnr").replace("kind: folder, path: imgs", "kind: folder"),
            r"exp.yaml:5: field data.train: a folder source needs a path",
        ),
        (MINIMAL.format(stage="gan") + "data_extra: 1\n", r"field data_extra"),
        ("name: [unclosed\n", r"exp.yaml:2: not valid YAML"),
        ("- a\n- b\n", r"expected a mapping"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TrainingError, match=expected) as err:
        load_config(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_hr_size_must_divide_by_scale(tmp_path: Path) -> None:
    text = MINIMAL.format(stage="psnr").replace("data:\n", "data:\n  hr_size: 30\n")
    with pytest.raises(TrainingError, match="not a multiple of model.scale 4"):
        load_config(write(tmp_path, text))


def test_shipped_configs_validate() -> None:
    folder = Path(__file__).resolve().parents[2] / "training" / "configs"
    for path in sorted(folder.glob("*.yaml")):
        config = load_config(path)
        assert config.model.scale == 4


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.format(stage="psnr") + "seed: 1\nseed: 2\n"
    with pytest.raises(
        TrainingError, match=r"exp.yaml:9: key 'seed' given twice \(first at line 8\)"
    ):
        load_config(write(tmp_path, text))
