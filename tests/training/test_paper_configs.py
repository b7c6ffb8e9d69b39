"""The shipped paper-scale configs: the paper's numbers, and they start (one iteration each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.io.images import write_image
from training.config import SourceSection, load_config
from training.loop import train
from training.prepare import prepare_dataset
from training.prepare_options import PrepareOptions

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_paper_configs_carry_the_papers_settings() -> None:
    psnr = load_config(CONFIGS / "paper-psnr-x4.yaml")
    gan = load_config(CONFIGS / "paper-gan-x4.yaml")
    for config in (psnr, gan):
        m = config.model
        assert (m.scale, m.num_features, m.num_blocks, m.growth_channels) == (4, 64, 23, 32)
        assert (config.data.batch_size, config.data.hr_size) == (16, 128)
        assert config.data.train.kind == "zarr"
    assert psnr.optim.lr == 2e-4 and psnr.optim.milestones == [200_000, 400_000, 600_000, 800_000]
    assert gan.optim.lr == 1e-4 and gan.optim.milestones == [50_000, 100_000, 200_000, 300_000]
    assert gan.optim.iterations == 400_000
    g = gan.gan
    assert (g.perceptual_weight, g.gan_weight, g.pixel_weight) == (1.0, 5e-3, 1e-2)
    assert g.perceptual_layers == {"conv5_4": 1.0} and g.vgg_weights.endswith("vgg19-dcbb9e9d.pth")


@pytest.mark.slow
def test_paper_configs_start(tmp_path: Path) -> None:
    """One iteration of each on a prepared store; the generator cut to nb 1 (nb 23 at batch 16 takes
    minutes on 2 shared cores), everything else (VGG19 to conv5_4, D with 64 features) as shipped."""
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(tmp_path / "hr" / f"{i}.png", rng.integers(0, 256, (160, 160, 3), np.uint8))
    prepare_dataset(tmp_path / "hr", tmp_path / "d.zarr", PrepareOptions(crop=128, step=32))
    source = SourceSection(kind="zarr", path=str(tmp_path / "d.zarr"))
    results = {}
    for stage in ("psnr", "gan"):
        config = load_config(CONFIGS / f"paper-{stage}-x4.yaml")
        config = config.model_copy(
            update={
                "output_dir": str(tmp_path / stage),
                "model": config.model.model_copy(update={"num_blocks": 1}),
                "data": config.data.model_copy(
                    update={"train": source, "validation": None, "batch_size": 1, "num_workers": 0}
                ),
                "optim": config.optim.model_copy(update={"iterations": 1}),
                "gan": config.gan.model_copy(
                    update={"pretrained": str(tmp_path / "psnr"), "vgg_weights": "random"}
                ),
            }
        )
        results[stage] = train(config, progress=False)
    assert results["psnr"].iteration == results["gan"].iteration == 1
    assert np.isfinite(results["gan"].last_losses["l_g"])
