"""``esrgan eval``: folder pairing, HR-free metrics, the model mode, outputs and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import save_tiny

from esrgan_plugin.cli import main
from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.loading import load_model
from pipelines.imresize import imresize
from pipelines.io.images import read_image, write_image
from training.evaluation.measures import lr_psnr
from training.evaluation.niqe import niqe
from training.metrics import psnr, ssim


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour image."""
    rng = np.random.default_rng(seed)
    big = cv2.resize(rng.normal(size=(h // 8, w // 8, 3)), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(128 + 50 * big + 8 * rng.normal(size=big.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """hr/{a,b}.png (200x200), lr/{a,b}.png (x1/4), sr/{a,b}_x4.png (bicubic round trips)."""
    for seed, name in enumerate(("a", "b")):
        hr = texture(200, 200, seed)
        lr = imresize(hr, 0.25)
        write_image(tmp_path / "hr" / f"{name}.png", hr)
        write_image(tmp_path / "lr" / f"{name}.png", lr)
        write_image(tmp_path / "sr" / f"{name}_x4.png", imresize(lr, 4))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["eval", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_folders_with_hr_and_lr(folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, folders / "sr", "--hr", folders / "hr", "--lr", folders / "lr", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["metrics"] == ["psnr", "ssim", "niqe", "lr-psnr"]
    assert [row["image"] for row in result["images"]] == ["a_x4.png", "b_x4.png"]
    sr = read_image(folders / "sr" / "a_x4.png")
    hr = read_image(folders / "hr" / "a.png")
    lr = read_image(folders / "lr" / "a.png")
    first = result["images"][0]
    assert first["psnr"] == pytest.approx(psnr(sr, hr, test_y_channel=True), abs=1e-12)
    assert first["ssim"] == pytest.approx(ssim(sr, hr, test_y_channel=True), abs=1e-12)
    assert first["niqe"] == pytest.approx(niqe(sr), abs=1e-12)
    assert first["lr-psnr"] == pytest.approx(lr_psnr(sr, lr), abs=1e-12)
    for metric in result["metrics"]:
        values = [row[metric] for row in result["images"]]
        assert result["mean"][metric] == pytest.approx(np.mean(values))
    assert "crop border: 0 px" in result["notes"]


def test_table_has_rows_and_mean_and_csv(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "out" / "scores.csv"
    code, out, _ = run(
        capsys, folders / "sr", "--hr", folders / "hr", "--crop-border", "4", "--csv", table
    )
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(lines) == 2 + 2 + 1 and lines[-1].startswith("| mean (2 images)")
    assert "note: lr-psnr: no --lr given, left out" in out
    rows = list(csv.DictReader(table.open()))
    assert [r["image"] for r in rows] == ["a_x4.png", "b_x4.png", "mean (2 images)"]
    assert float(rows[0]["psnr"]) == pytest.approx(
        psnr(
            read_image(folders / "sr" / "a_x4.png"),
            read_image(folders / "hr" / "a.png"),
            crop_border=4,
            test_y_channel=True,
        )
    )
    assert set(rows[0]) == {"image", "psnr", "ssim", "niqe"}


def test_without_hr_only_hr_free_metrics(folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, folders / "sr", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["metrics"] == ["niqe"]
    assert "psnr: no --hr given, left out" in result["notes"]


def test_asking_for_psnr_without_hr_is_a_usage_error(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, folders / "sr", "--metrics", "psnr,niqe")
    assert code == 2
    assert err.strip() == "esrgan: error: metric psnr needs HR images: pass --hr HR_DIR"


def test_unknown_metric(folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, folders / "sr", "--metrics", "psnr,fid")
    assert (
        code == 2
        and "--metrics: unknown metric 'fid'" in err
        and len(err.strip().splitlines()) == 1
    )


def test_unpaired_file_is_reported_and_the_rest_scored(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(folders / "sr" / "zebra_x4.png", texture(200, 200, 9))
    code, out, err = run(capsys, folders / "sr", "--hr", folders / "hr", "--json")
    assert code == 1
    result = json.loads(out)
    assert [row["image"] for row in result["images"]] == ["a_x4.png", "b_x4.png"]
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"esrgan: error: {folders / 'sr' / 'zebra_x4.png'}: no HR image")
    assert lines[-1] == "esrgan: error: 1 of 3 images could not be scored"


def test_single_files_pair_whatever_their_names(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One SR file against one HR and one LR file named otherwise (Set14's baboon_lr_x4.png with
    baboon_hr.png): scored, and the mean row says "1 image"."""
    hr, lr = folders / "hr" / "a.png", folders / "lr" / "a.png"
    sr = folders / "sr" / "a_x4.png"
    renamed_hr, renamed_lr = folders / "a_hr.png", folders / "a_lr_x4.png"
    renamed_hr.write_bytes(hr.read_bytes())
    renamed_lr.write_bytes(lr.read_bytes())
    code, out, err = run(capsys, sr, "--hr", renamed_hr, "--lr", renamed_lr, "--json")
    assert code == 0, err
    result = json.loads(out)
    expected = psnr(read_image(sr), read_image(hr), test_y_channel=True)
    assert result["images"][0]["psnr"] == pytest.approx(expected, abs=1e-12)
    assert result["images"][0]["lr-psnr"] == pytest.approx(
        lr_psnr(read_image(sr), read_image(lr)), abs=1e-12
    )
    code, out, _ = run(capsys, sr, "--hr", renamed_hr, "--metrics", "psnr")
    assert code == 0 and "| mean (1 image) |" in out


def test_size_mismatch_names_both_sizes(folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(folders / "sr" / "a_x4.png", texture(64, 96, 1), overwrite=True)
    code, _, err = run(capsys, folders / "sr", "--hr", folders / "hr", "--metrics", "psnr")
    assert code == 1
    line = err.strip().splitlines()[0]
    assert "a_x4.png is 96x64 but its HR" in line and "is 200x200" in line
    assert "HR/SR = 2.08x3.12" in line


def test_lr_mismatch_names_the_implied_scale(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(folders / "lr" / "b.png", texture(40, 50, 1), overwrite=True)
    code, _, err = run(capsys, folders / "sr", "--lr", folders / "lr", "--metrics", "lr-psnr")
    assert code == 1
    line = err.strip().splitlines()[0]
    assert "b_x4.png is 200x200 but its LR" in line and "is 50x40" in line
    assert "implies a scale of 4 x 5" in line


def test_unreadable_image(folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folders / "sr" / "b_x4.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run(capsys, folders / "sr", "--hr", folders / "hr")
    assert code == 1
    assert err.splitlines()[0].startswith(f"esrgan: error: {folders / 'sr' / 'b_x4.png'}")
    assert "| a_x4.png |" in out


def test_model_with_hr_only(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    code, out, err = run(capsys, "--model", model, "--hr", folders / "hr", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["metrics"] == ["psnr", "ssim", "niqe", "lr-psnr"]
    assert "crop border: 4 px" in result["notes"]
    hr = read_image(folders / "hr" / "a.png")
    lr = imresize(hr, 0.25)
    upscaler = Upscaler(load_model(model), UpscaleOptions(tile=None, precision="fp32"))
    sr = upscaler.upscale(lr)
    first = result["images"][0]
    assert first["psnr"] == pytest.approx(psnr(sr, hr, 4, True), abs=1e-9)
    assert first["lr-psnr"] == pytest.approx(lr_psnr(sr, lr, 4), abs=1e-9)


def test_model_with_lr_and_hr(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    code, out, err = run(
        capsys, "--model", model, "--lr", folders / "lr", "--hr", folders / "hr", "--json"
    )
    assert code == 0, err
    assert [row["image"] for row in json.loads(out)["images"]] == ["a.png", "b.png"]


def test_model_needs_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_tiny(tmp_path / "tiny.safetensors")
    code, _, err = run(capsys, "--model", model)
    assert code == 2 and "--model needs --lr LR_DIR, --hr HR_DIR or both" in err


def test_perceptual_index_without_ma_model_reports_niqe(
    folders: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, folders / "sr", "--metrics", "pi", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["metrics"] == ["niqe"]
    assert any("Ma et al.'s trained model" in note for note in result["notes"])


def test_perceptual_index_with_a_missing_ma_model_file(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "NRQM_model.mat"
    code, _, err = run(capsys, folders / "sr", "--metrics", "pi", "--ma-model", missing)
    assert code == 1 and err.strip() == f"esrgan: error: --ma-model {missing}: no such file"


def test_perceptual_index_needs_pyiqa(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("scipy")
    try:
        import pyiqa  # type: ignore[import-not-found]  # noqa: F401

        pytest.skip("pyiqa is installed; this checks the message given without it")
    except ImportError:
        pass
    model = tmp_path / "NRQM_model.mat"
    model.write_bytes(b"user supplied")
    code, _, err = run(capsys, folders / "sr", "--metrics", "pi", "--ma-model", model)
    assert code == 1 and "computed by pyiqa, which is not installed" in err


def test_niqe_of_an_image_too_small_for_it_is_a_note_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "small.png", texture(64, 64, 0))
    write_image(tmp_path / "big.png", texture(128, 128, 1))
    code, out, err = run(capsys, tmp_path / "small.png", tmp_path / "big.png")
    assert code == 0 and err == ""
    assert (
        "note: small.png: niqe left out (NIQE needs at least 96x96 pixels after cropping, got 64x64)"
        in out
    )
    assert "big.png" in out and "mean" in out


def test_identical_images_give_infinite_psnr_in_json_and_csv(
    folders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, folders / "hr", "--hr", folders / "hr", "--metrics", "psnr,ssim", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert result["images"][0]["psnr"] == "inf" and result["mean"]["psnr"] == "inf"
    assert result["images"][0]["ssim"] == pytest.approx(1.0)
    table = tmp_path / "t.csv"
    assert run(capsys, folders / "hr", "--hr", folders / "hr", "--csv", table)[0] == 0
    assert list(csv.DictReader(table.open()))[0]["psnr"] == "inf"
