"""``esrgan sweep``: alphas, a tiny sweep's report files, the plot, the HTML in a real browser, the stage."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import save_tiny, tiny_rrdbnet

from esrgan_plugin.cli import main
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.interpolate import interpolate_models
from esrgan_plugin.models.loading import load_model, save_model
from pipelines.imresize import imresize
from pipelines.io.images import read_image, write_image
from pipelines.testing import run_text
from training.evaluation.niqe import niqe
from training.evaluation.plot import choose_axes, draw
from training.evaluation.run_sweep import sweep_metrics, sweep_report
from training.evaluation.sweep import SweepParams, parse_alphas, run_sweep
from training.metrics import psnr

ALPHAS = [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("text", "alphas"),
    [
        ("0:1:0.1", [round(i / 10, 10) for i in range(11)]),
        ("0:1:0.5", ALPHAS),
        ("0.2:0.3:0.05", [0.2, 0.25, 0.3]),
        ("1,0,0.5,0.5", ALPHAS),
        ("0.3", [0.3]),
    ],
)
def test_parse_alphas(text: str, alphas: list[float]) -> None:
    assert parse_alphas(text) == pytest.approx(alphas)


@pytest.mark.parametrize(
    ("text", "message"),
    [("0:1.5:0.5", "1.5 is outside"), ("0:1:0", "step must be positive"), ("a,b", "expected")],
)
def test_bad_alphas(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_alphas(text)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    big = cv2.resize(rng.normal(size=(h // 8, w // 8, 3)), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(128 + 50 * big + 8 * rng.normal(size=big.shape), 0, 255).astype(np.uint8)


def save_grey_tiny(path: Path, seed: int) -> Path:
    """A tiny random model whose output sits around mid-grey (a random one outputs black),
    so that NIQE, which needs texture in every 96x96 block, is defined on it."""
    torch.manual_seed(seed)
    net = tiny_rrdbnet()
    with torch.no_grad():
        net.conv_last.bias.fill_(0.5)
    save_model(path, net)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    save_grey_tiny(root / "psnr.safetensors", 1)
    save_grey_tiny(root / "gan.safetensors", 2)
    for seed, name in enumerate(("a", "b")):
        write_image(root / "hr" / f"{name}.png", texture(200, 200, seed))
    return root


@pytest.fixture(scope="module")
def report(workspace: Path) -> Path:
    out = workspace / "report"
    code = main(
        [
            "sweep",
            "--psnr-model",
            str(workspace / "psnr.safetensors"),
            "--gan-model",
            str(workspace / "gan.safetensors"),
            "--alphas",
            "0:1:0.5",
            "--hr",
            str(workspace / "hr"),
            "-o",
            str(out),
            "--crop-size",
            "48",
            "--crops-per-image",
            "2",
        ]
    )
    assert code == 0
    return out


def test_report_files_and_values(workspace: Path, report: Path) -> None:
    for name in ("results.csv", "results.json", "perception-distortion.png", "index.html"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0
    result = json.loads((report / "results.json").read_text())
    assert result["alphas"] == ALPHAS
    assert list(result["methods"]) == ["bicubic", "alpha 0", "alpha 0.5", "alpha 1", "HR"]
    # alpha 0.5 is the in-memory interpolation, scored as eval would score it
    hr = read_image(workspace / "hr" / "a.png")
    lr = imresize(hr, 0.25)
    model = interpolate_models(
        load_model(workspace / "psnr.safetensors"), load_model(workspace / "gan.safetensors"), 0.5
    )
    sr = Upscaler(model, UpscaleOptions(precision="fp32")).upscale(lr)
    row = result["methods"]["alpha 0.5"]["images"][0]
    assert row["image"] == "a.png"
    assert row["psnr"] == pytest.approx(psnr(sr, hr, 4, True), abs=1e-9)
    assert row["niqe"] == pytest.approx(niqe(sr, 4), abs=1e-9)
    assert result["methods"]["HR"]["images"][0]["niqe"] == pytest.approx(niqe(hr, 4), abs=1e-9)
    bicubic = result["methods"]["bicubic"]["images"][0]
    assert bicubic["psnr"] == pytest.approx(psnr(imresize(lr, 4), hr, 4, True), abs=1e-9)
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert len(rows) == 4 * 3 + 3  # 4 methods x (2 images + mean), HR x (2 images + mean)
    assert {r["method"] for r in rows if r["image"] == "mean"} == set(result["methods"])


def test_plot_has_one_point_per_alpha(workspace: Path, report: Path) -> None:
    result = json.loads((report / "results.json").read_text())
    plotted = [p["method"] for p in result["plot"]["points"]]
    assert plotted == ["bicubic", "alpha 0", "alpha 0.5", "alpha 1", "HR"]
    hr_point = result["plot"]["points"][-1]
    assert hr_point["x"] == 0.0
    png = cv2.imread(str(report / "perception-distortion.png"))
    assert png is not None and png.shape[1] > 600


def test_figure_curve_has_one_point_per_alpha(workspace: Path) -> None:
    params = SweepParams(
        psnr_model=str(workspace / "psnr.safetensors"),
        gan_model=str(workspace / "gan.safetensors"),
        alphas="0,0.25,0.5,1",
        hr=str(workspace / "hr"),
        output=str(workspace / "unused"),
    )
    metrics, _ = sweep_metrics(params)
    import argparse

    from training.evaluation.run_eval import context_for

    context = context_for(argparse.Namespace(niqe_params=None, ma_model=None), 4, metrics)
    result = run_sweep(params, metrics, context, [])
    figure = draw(result, choose_axes(metrics, True))
    expected_labels = [["α=0", "α=1"], ["α=0", "α=0.25", "α=0.5", "α=1"]]  # full view, zoom
    for ax, expected in zip(figure.axes, expected_labels, strict=True):
        curve = [line for line in ax.lines if line.get_gid() == "alphas"]
        assert len(curve) == 1 and len(curve[0].get_xdata()) == 4
        labels = [t.get_text() for t in ax.texts if t.get_text().startswith("α=")]
        assert labels == expected
    assert [line.get_gid() for line in figure.axes[0].lines] == ["alphas", "bicubic", "HR"]


def test_existing_report_is_kept_without_overwrite(
    workspace: Path, report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (report / "results.json").read_bytes()
    code = main(
        [
            "sweep",
            "--psnr-model",
            str(workspace / "psnr.safetensors"),
            "--gan-model",
            str(workspace / "gan.safetensors"),
            "--hr",
            str(workspace / "hr"),
            "-o",
            str(report),
        ]
    )
    assert code == 2
    assert "holds a report already (results.csv); pass --overwrite" in capsys.readouterr().err
    assert (report / "results.json").read_bytes() == before


def test_models_of_different_architectures(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = save_tiny(tmp_path / "other.safetensors", nf=12)
    code = main(
        [
            "sweep",
            "--psnr-model",
            str(workspace / "psnr.safetensors"),
            "--gan-model",
            str(other),
            "--hr",
            str(workspace / "hr"),
            "-o",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "models differ in architecture" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_alphas_on_the_command_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", "--psnr-model", "a", "--gan-model", "b", "--alphas", "0:2:1", "-o", "x"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("esrgan: error: --alphas:") and "2.0 is outside" in err


def test_an_image_too_small_for_niqe_is_scored_without_it_not_the_end_of_the_sweep(
    workspace: Path, tmp_path: Path
) -> None:
    hr = tmp_path / "hr"
    write_image(hr / "big.png", texture(200, 200, 5))
    write_image(hr / "small.png", texture(64, 64, 6))  # 56x56 once the border is cropped
    params = SweepParams(
        psnr_model=str(workspace / "psnr.safetensors"),
        gan_model=str(workspace / "gan.safetensors"),
        alphas="0,1",
        hr=str(hr),
        output=str(tmp_path / "report"),
        metrics="psnr,niqe",
        crop_size=32,
    )
    index = sweep_report(params)
    result = json.loads((index.parent / "results.json").read_text())
    note = "small.png: niqe left out (NIQE needs at least 96x96 pixels after cropping, got 56x56)"
    assert result["notes"].count(note) == 1
    for method in ("bicubic", "alpha 0", "alpha 1"):
        rows = {row["image"]: row for row in result["methods"][method]["images"]}
        assert rows["small.png"]["psnr"] is not None and "niqe" not in rows["small.png"]
        assert rows["big.png"]["niqe"] is not None
    assert note in index.read_text()


def _chromium() -> str:
    """A headless Chromium: skipped where there is none, a failure where CI requires one (.ci/run
    installs Debian's ``chromium-headless-shell`` and sets ``TESTS_REQUIRE_CHROMIUM=1``)."""
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    reason = "no headless Chromium here (Debian: apt-get install chromium-headless-shell)"
    if os.environ.get("TESTS_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _dom(url: str) -> str:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=5000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",  # in the session's tmp folder
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_html_loads_in_a_real_browser(report: Path) -> None:
    dom = _dom((report / "index.html").as_uri())
    body = dom[dom.index("<body") : dom.index(">", dom.index("<body")) + 1]
    assert 'data-ready="yes"' in body, body  # the inline script ran to the end
    assert "data-errors" not in body, body
    assert 'data-plot="1100x460"' in body, body  # the embedded plot decoded
    assert "<table" in dom and 'id="means"' in dom
    assert '<div class="crop-set" data-crop="0">' in dom
    assert '<div class="crop-set" data-crop="1" hidden="">' in dom


def test_crop_selector_shows_the_chosen_crop(report: Path) -> None:
    dom = _dom((report / "index.html").as_uri() + "#crop=3")
    assert '<div class="crop-set" data-crop="3">' in dom
    assert '<div class="crop-set" data-crop="0" hidden="">' in dom
    shown = dom.split('<div class="crop-set" data-crop="3">')[1].split("</div>")[0]
    methods = [part.split('"')[0] for part in shown.split('data-method="')[1:]]
    assert methods == ["bicubic", "alpha 0", "alpha 0.5", "alpha 1", "HR"]


def test_sweep_stage_in_a_pipeline(workspace: Path, tmp_path: Path) -> None:
    text = f"""
pipeline: sweep-report
steps:
  - id: report
    uses: esrgan.sweep
    with:
      psnr_model: {workspace / "psnr.safetensors"}
      gan_model: {workspace / "gan.safetensors"}
      alphas: "0,1"
      lr: {workspace / "lr-only"}
      output: {tmp_path / "stage-report"}
      metrics: niqe,lr-psnr
"""
    for name in ("a", "b"):
        write_image(workspace / "lr-only" / f"{name}.png", imresize(texture(200, 200, 7), 0.25))
    summary = run_text(text, entry_points=True)
    index = Path(summary.artefacts["report"])
    assert index == tmp_path / "stage-report" / "index.html" and index.is_file()
    result = json.loads((index.parent / "results.json").read_text())
    assert list(result["methods"]) == ["bicubic", "alpha 0", "alpha 1"]  # no HR given
    assert result["plot"]["x"].startswith("LR-consistency RMSE")
    assert len(result["plot"]["points"]) == 3


def test_pipelines_run_counts_the_report_files_it_wrote(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main as pipelines_main

    job = tmp_path / "sweep.yaml"
    job.write_text(
        "pipeline: sweep-report\n"
        "steps:\n"
        "  - id: report\n"
        "    uses: esrgan.sweep\n"
        f"    with: {{psnr_model: {workspace / 'psnr.safetensors'}, "
        f"gan_model: {workspace / 'gan.safetensors'}, alphas: '0,1', hr: {workspace / 'hr'}, "
        f"output: {tmp_path / 'r'}, metrics: 'psnr,niqe'}}\n"
    )
    assert pipelines_main(["run", str(job), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sweep-report: wrote 4 files and made 1 artefact in ")
    for name in ("results.csv", "results.json", "perception-distortion.png", "index.html"):
        assert f"  {tmp_path / 'r' / name}\n" in out and (tmp_path / "r" / name).is_file()
    assert f"artefacts:\n  report: {tmp_path / 'r' / 'index.html'}\n" in out


def test_sweep_report_function_needs_images(tmp_path: Path) -> None:
    from training.evaluation.run_eval import EvalUsageError

    params = SweepParams(psnr_model="a", gan_model="b", output=str(tmp_path / "r"))
    with pytest.raises(EvalUsageError, match="needs --hr HR_DIR or --lr LR_DIR"):
        sweep_report(params)


def test_sweep_report_example(workspace: Path, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "pipelines" / "examples" / "sweep-report.yaml"
    summary = run_text(
        example.read_text(encoding="utf-8"),
        overrides=[
            f"report.psnr_model={workspace / 'psnr.safetensors'}",
            f"report.gan_model={workspace / 'gan.safetensors'}",
            "report.alphas=0,1",
            f"report.hr={workspace / 'hr'}/*.png",
            f"report.output={tmp_path / 'example'}",
        ],
        entry_points=True,
    )
    assert summary.artefacts == {"report": str(tmp_path / "example" / "index.html")}
    result = json.loads((tmp_path / "example" / "results.json").read_text())
    assert list(result["methods"]) == ["bicubic", "alpha 0", "alpha 1", "HR"]
