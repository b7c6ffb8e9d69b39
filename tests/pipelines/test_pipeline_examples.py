"""Every example pipeline in pipelines/examples runs, with tiny models and tiny images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, load_model
from pipelines.builtin.denoise import DenoiseParams, denoise
from pipelines.io.images import read_image, write_image
from pipelines.runner.summary import RunSummary
from pipelines.testing import run_text

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines" / "examples"


@dataclass(frozen=True)
class Workspace:
    root: Path
    model_a: Path
    model_b: Path
    photo: Path


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("examples")
    torch.manual_seed(3)
    a = save_tiny(root / "a.safetensors")
    torch.manual_seed(4)
    b = save_tiny(root / "b.safetensors")
    photo = write_image(root / "photos" / "baboon.png", random_image(12, 10))
    write_image(root / "photos" / "deep" / "leaf.png", random_image(8, 6, 4, dtype=np.uint16))
    return Workspace(root, a, b, photo)


def run_example(
    name: str, overrides: list[str] = (), replace: dict[str, str] | None = None
) -> RunSummary:  # type: ignore[assignment]
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return run_text(text, overrides=list(overrides), entry_points=True)


def upscale_reference(model: Path, image: np.ndarray) -> np.ndarray:
    return Upscaler(load_model(model), UpscaleOptions(tile=0, device="cpu")).upscale(image)


def test_denoise_upscale_one_image(ws: Workspace) -> None:
    summary = run_example(
        "denoise-upscale.yaml",
        [
            f"src.path={ws.photo}",
            f"sr.model={ws.model_a}",
            "sr.device=cpu",
            f"out.path={ws.root}/one/{{name}}_x4.png",
        ],
    )
    assert summary.written == (str(ws.root / "one" / "baboon_x4.png"),)
    cleaned = denoise(read_image(ws.photo), DenoiseParams(method="nl_means"))
    np.testing.assert_array_equal(
        read_image(summary.written[0]), upscale_reference(ws.model_a, cleaned)
    )


def test_folder_batch_keeps_bit_depth_and_alpha(ws: Workspace) -> None:
    summary = run_example(
        "folder-batch.yaml",
        [
            f"src.path={ws.root}/photos",
            f"sr.model={ws.model_a}",
            f"out.path={ws.root}/batch/{{name}}_x4.png",
        ],
    )
    outputs = {Path(p).name: read_image(p) for p in summary.written}
    assert set(outputs) == {"baboon_x4.png", "leaf_x4.png"}
    assert outputs["leaf_x4.png"].shape == (32, 24, 4) and outputs["leaf_x4.png"].dtype == np.uint16
    assert outputs["baboon_x4.png"].shape == (48, 40, 3)


def test_alpha_sweep_writes_six_outputs(ws: Workspace) -> None:
    summary = run_example(
        "alpha-sweep.yaml",
        replace={
            "default-psnr": str(ws.model_a),
            "default-gan": str(ws.model_b),
            "photos/astronaut.png": str(ws.photo),
            '"out/sweep/': f'"{ws.root}/sweep/',
        },
    )
    assert [Path(p).name for p in summary.written] == [
        f"baboon_alpha{a}.png" for a in ("0.0", "0.2", "0.4", "0.6", "0.8", "1.0")
    ]
    images = [read_image(p) for p in summary.written]
    image = read_image(ws.photo)
    np.testing.assert_array_equal(images[0], upscale_reference(ws.model_a, image))
    np.testing.assert_array_equal(images[-1], upscale_reference(ws.model_b, image))
    assert len({im.tobytes() for im in images}) == 6


def test_interpolate_then_upscale_with_the_artefact(ws: Workspace) -> None:
    model = ws.root / "models" / "mix.safetensors"
    summary = run_example(
        "interpolate-upscale.yaml",
        [
            f"mix.model_a={ws.model_a}",
            f"mix.model_b={ws.model_b}",
            f"mix.output={model}",
            f"src.path={ws.photo}",
            f"out.path={ws.root}/interp/{{name}}.png",
        ],
    )
    assert summary.artefacts == {"mix": str(model)}
    np.testing.assert_array_equal(
        read_image(summary.written[0]), upscale_reference(model, read_image(ws.photo))
    )


def test_zarr_upscale_in_chunks_equals_the_whole_image(ws: Workspace) -> None:
    import zarr

    from esrgan_plugin.arch.rrdbnet import receptive_radius

    image = random_image(45, 50)
    zarr.create_array(
        str(ws.root / "slide.zarr"), shape=image.shape, chunks=(20, 20, 3), dtype="uint8"
    )[...] = image
    halo = receptive_radius(load_model(ws.model_a).config)  # type: ignore[arg-type]
    summary = run_example(
        "zarr-upscale.yaml",
        [
            f"src.path={ws.root}/slide.zarr",
            "src.chunk=20",
            f"sr.model={ws.model_a}",
            f"sr.halo={halo}",
            "sr.device=cpu",
            f"out.path={ws.root}/zarr/slide_x4.zarr",
        ],
    )
    out = zarr.open_array(summary.written[0], mode="r")
    assert out.shape == (180, 200, 3) and out.chunks == (
        80,
        80,
        3,
    )  # blocks of 20 (+ the small last ones)
    cleaned = denoise(image, DenoiseParams(method="median", size=3))
    assert (
        np.abs(out[...].astype(int) - upscale_reference(ws.model_a, cleaned).astype(int)).max() <= 1
    )


def test_every_example_is_run_by_a_test() -> None:
    tested = {
        "denoise-upscale.yaml",
        "folder-batch.yaml",
        "alpha-sweep.yaml",
        "interpolate-upscale.yaml",
    }
    tested.add("zarr-upscale.yaml")
    tested.add("train-interpolate-upscale.yaml")  # run in tests/training/test_train_stage.py
    tested.add("ome-zarr-upscale.yaml")  # run in tests/pipelines/test_ome_zarr.py
    tested.add("sweep-report.yaml")  # run in tests/training/test_sweep.py
    tested.add("restore-upscale.yaml")  # run in tests/pipelines/test_restore_pipelines.py
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == tested
