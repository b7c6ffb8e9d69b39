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
