"""The main job (`make run`): scripts/demo.py runs the YAML pipeline and writes a comparison."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from helpers import save_tiny

from pipelines.io.images import read_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def test_demo_writes_result_and_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    monkeypatch.setattr(
        sys, "argv", ["demo.py", "--out", str(tmp_path / "demo"), "--model", str(model)]
    )
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert done.value.code == 0
    lr = read_image(tmp_path / "demo" / "chelsea_lr.png")
    sr = read_image(tmp_path / "demo" / "chelsea_lr_x4.png")
    comparison = read_image(tmp_path / "demo" / "chelsea_comparison.png")
    assert sr.shape == (lr.shape[0] * 4, lr.shape[1] * 4, 3)
    assert comparison.shape == (sr.shape[0], sr.shape[1] * 3, 3)
    out = capsys.readouterr().out
    assert "comparison:" in out and "PSNR-Y vs original" in out
    line = next(x for x in out.splitlines() if x.startswith("PSNR-Y vs original"))
    bicubic, pipeline = (float(part.split()[-2]) for part in line.split(":")[1].split(","))
    # a random tiny model scores far below bicubic: the output says that a GAN model does too
    assert pipeline < bicubic and "a lower PSNR than bicubic is expected of a GAN model" in out


def test_the_psnr_note_is_given_only_when_the_pipeline_scores_below_bicubic() -> None:
    demo = runpy.run_path(str(SCRIPT))  # not as __main__: only the definitions
    assert demo["psnr_note"](31.40, 29.25).startswith("note: a lower PSNR than bicubic")
    assert demo["psnr_note"](31.40, 32.0) is None
