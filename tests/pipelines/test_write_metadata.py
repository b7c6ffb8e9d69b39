"""builtin.read -> transforms -> builtin.write keeps the ICC profile and EXIF and records provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms
from pydantic import Field

from pipelines.hooks.markers import hookimpl
from pipelines.io.images import read_image, read_provenance
from pipelines.io.images.provenance import FORMAT, project_version
from pipelines.runner.registry import StageParams, StageSpec
from pipelines.testing import run_text

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


class GainParams(StageParams):
    """Parameters of the test stage ``tagging.gain``."""

    gain: float = Field(1.0, description="factor applied to every sample")


def gain(image: np.ndarray, params: GainParams) -> np.ndarray:
    return np.clip(image * params.gain, 0, 255).astype(image.dtype)


class TaggingPlugin:
    """A plugin whose transform says what its parameters resolve to, as a model stage would."""

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [
            StageSpec(
                id="tagging.gain",
                description="Multiply the samples.",
                params=GainParams,
                fn=gain,
                provenance=lambda p: {"weights_sha256": "ab" * 32, "gain_used": p.gain},
            )
        ]


def photo(path: Path, size: tuple[int, int] = (12, 8)) -> Path:
    """A JPEG as a camera writes it: sRGB profile, EXIF with make, orientation 6 and sizes."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    exif = img.getexif()
    exif[ExifTags.Base.Make] = "Camera Maker"
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageWidth] = size[0]
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.ExifImageHeight] = size[1]
    img.save(path, exif=exif, icc_profile=SRGB, quality=95)
    return path


def run(tmp_path: Path, out: str, **write: Any) -> list[str]:
    options = ", ".join(f"{k}: {str(v).lower()}" for k, v in write.items())
    summary = run_text(
        f"""
        pipeline: keep-metadata
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in/*.jpg"}}}}
          - {{id: big, uses: builtin.resize, with: {{scale: 2}}}}
          - {{id: lift, uses: tagging.gain, with: {{gain: 1.5}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/{out}"{", " + options if options else ""}}}}}
        """,
        TaggingPlugin(),
    )
    return list(summary.written)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_icc_exif_and_provenance_go_through_a_pipeline(tmp_path: Path, ext: str) -> None:
    (tmp_path / "in").mkdir()
    source = photo(tmp_path / "in" / "cam.jpg")
    (written,) = run(tmp_path, f"out/{{name}}.{ext}")
    assert read_image(written).shape[:2] == (24, 16)  # upright (orientation 6), then x2
    with Image.open(written) as img:
        assert img.info["icc_profile"] == SRGB
        exif = img.getexif()
        sub = exif.get_ifd(ExifTags.IFD.Exif)  # inside: a TIFF's sub-directory is read lazily
    assert exif[ExifTags.Base.Make] == "Camera Maker" and exif[ExifTags.Base.Orientation] == 1
    assert (sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight]) == (16, 24)

    record = read_provenance(written)
    assert record is not None
    assert record["format"] == FORMAT and record["version"] == project_version()
    assert record["source"] == str(source)
    assert record["pipeline"] == {"name": "keep-metadata", "file": "test.yaml", "write_step": "out"}
    assert [(s["step"], s["stage"]) for s in record["steps"]] == [
        ("big", "builtin.resize"),
        ("lift", "tagging.gain"),
    ]
    assert record["steps"][0]["params"]["scale"] == 2 and record["steps"][0]["scale"] == 2
    assert record["steps"][1]["params"] == {"gain": 1.5}
    assert record["steps"][1]["provenance"] == {"weights_sha256": "ab" * 32, "gain_used": 1.5}


def test_metadata_false_writes_none(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    photo(tmp_path / "in" / "cam.jpg")
    (written,) = run(tmp_path, "out/{name}.png", metadata=False)
    with Image.open(written) as img:
        assert "icc_profile" not in img.info and "exif" not in img.info
        assert not any(key in img.info for key in ("provenance", "XML:com.adobe.xmp"))
    assert read_provenance(written) is None


def test_images_without_metadata_still_get_provenance(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(tmp_path / "in" / "plain.jpg")
    (written,) = run(tmp_path, "out/{name}.png")
    with Image.open(written) as img:
        assert "icc_profile" not in img.info and "exif" not in img.info
    record = read_provenance(written)
    assert record is not None and record["steps"][1]["stage"] == "tagging.gain"
