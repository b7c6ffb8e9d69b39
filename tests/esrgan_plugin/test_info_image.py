"""``esrgan info IMAGE``: an image file's provenance, ICC profile and EXIF, as text and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esrgan_plugin.cli import main
from pipelines.api import ImageMetadata, make_provenance, write_image

STEP = {
    "step": "sr",
    "stage": "esrgan.upscale",
    "params": {"model": "default-psnr", "tta": True},
    "provenance": {
        "model": {"name": "default-psnr", "sha256": "7f" * 32, "architecture": "RRDBNet"},
        "precision": "int8",
        "precision_auto": {"precision": "int8", "psnr_db": 58.83},
        "tta": True,
    },
}


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # type: ignore[no-any-return]


def exif_block() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    return exif.tobytes()


@pytest.fixture
def made(tmp_path: Path) -> Path:
    record = make_provenance(
        source="in/cat.jpg", steps=[STEP], command=["esrgan", "upscale", "in/cat.jpg", "-o", "x y"]
    )
    metadata = ImageMetadata(icc_profile=srgb_profile(), exif=exif_block())
    return write_image(
        tmp_path / "out.png",
        np.zeros((6, 5, 3), np.uint8),
        metadata=metadata,
        provenance=record,
    )


def test_text(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(made)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"file: {made}", "ICC profile: yes (RGB, 588 bytes)", lines[2]]
    assert lines[2].startswith("EXIF: yes (") and "provenance:" in lines
    text = "\n".join(lines)
    assert f"          sha256: {'7f' * 32}" in text
    assert "        precision_auto:\n          precision: int8\n          psnr_db: 58.83" in text
    assert (
        "  source: in/cat.jpg" in text and "  command: esrgan upscale in/cat.jpg -o 'x y'" in text
    )


def test_json(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(made), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["icc_profile"] == {"bytes": len(srgb_profile()), "colour_space": "RGB"}
    assert info["exif"]["bytes"] > 0
    assert info["provenance"]["steps"] == [STEP]


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".webp", ".bmp"])
def test_a_file_without_a_record(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_image(tmp_path / f"plain{suffix}", np.full((4, 4, 3), 9, np.uint8))
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(path),
        "icc_profile": None,
        "exif": None,
        "provenance": None,
    }
    assert main(["info", str(path)]) == 0
    assert "provenance: none (written without one" in capsys.readouterr().out


def test_missing_or_damaged_files_are_one_line_errors(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    for path, message in (
        (tmp_path / "absent.png", "no such image file"),
        (damaged, "not a supported image format (or the file is corrupt)"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "esrgan_plugin", "info", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr == f"esrgan: error: {path}: {message}\n"
