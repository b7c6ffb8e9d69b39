"""``make examples`` (scripts/example_inputs.py) makes every input the example pipelines name,
so that each example runs from a fresh clone: run from the folder holding them, as documented."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import save_tiny

from pipelines.builtin.files import ReadParams, read_images
from pipelines.io.ome_source import open_ome
from pipelines.testing import run_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "pipelines" / "examples"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh-clone")
    made = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "example_inputs.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "made" in made.stdout and made.stderr == ""
    again = subprocess.run(  # a second run keeps what is there
        [sys.executable, str(REPO / "scripts" / "example_inputs.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "made" not in again.stdout
    return root


def _named_inputs(example: Path) -> list[str]:
    """The input paths an example's steps name (read paths, sweep HR images)."""
    steps = yaml.safe_load(example.read_text(encoding="utf-8"))["steps"]
    names = []
    for step in steps:
        params = step.get("with") or {}
        if step["uses"] == "builtin.read":
            names.append(params["path"])
        elif step["uses"] == "esrgan.sweep":
            names.append(params["hr"])
        elif step["uses"] == "esrgan.train":
            names.append(params["config"])
    return names


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_input_an_example_names_exists_and_reads(
    inputs: Path, example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = _named_inputs(example)
    assert names, example
    for name in names:
        if name.endswith(".yaml"):  # a training experiment of the repository, copied
            assert (inputs / name).read_text() == (REPO / name).read_text(), name
            continue
        monkeypatch.chdir(inputs)  # relative paths are relative to the working directory
        assert glob.glob(name), f"{example.name}: {name} is not among the sample inputs"
        assert read_images(ReadParams(path=name)), name


def test_the_ome_zarr_sample_is_an_ome_image(inputs: Path) -> None:
    pytest.importorskip("ome_zarr")
    image = open_ome(str(inputs / "data" / "cells.ome.zarr"))
    assert image is not None and image.names == ("c", "y", "x") and len(image.levels) == 2


def test_the_zarr_example_runs_on_its_sample_input_from_the_inputs_folder(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    monkeypatch.chdir(inputs)
    summary = run_text(
        (EXAMPLES / "zarr-upscale.yaml").read_text(encoding="utf-8"),
        overrides=[f"sr.model={model}", f"out.path={tmp_path / 'slide_x4.zarr'}"],
        entry_points=True,
    )
    assert summary.written == (str(tmp_path / "slide_x4.zarr"),)


def test_the_training_example_runs_from_the_inputs_folder_not_only_the_repository(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its experiment files are named relative to the working directory like every input."""
    monkeypatch.chdir(inputs)
    summary = run_text(
        (EXAMPLES / "train-interpolate-upscale.yaml").read_text(encoding="utf-8"),
        entry_points=True,
    )
    assert {Path(p).name for p in summary.written} == {"astronaut_mix.png", "rocket_mix.png"}
    assert Path(summary.artefacts["mix"]).is_file()
