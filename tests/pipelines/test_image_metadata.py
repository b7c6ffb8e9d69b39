"""ICC profiles, EXIF and provenance records: kept from input to output in every format.

What the files hold is read back with Pillow (and, for TIFF, tifffile), not with our own
reader, so a writer bug cannot hide behind a matching reader bug; that the files are valid is
checked by decoding them with OpenCV (libpng, libjpeg, libwebp, libtiff), which prints on stderr
what it finds wrong.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from pipelines.errors import ImageIOError
from pipelines.io.images import (
    ImageMetadata,
    make_provenance,
    read_image,
    read_image_with_meta,
    read_metadata,
    read_provenance,
    write_image,
)
from pipelines.io.images.provenance import NAMESPACE

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
EXIF_IFD = ExifTags.IFD.Exif
GPS_IFD = ExifTags.IFD.GPSInfo


def camera_exif(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    """EXIF as a camera writes it: make, model, orientation, sizes, exposure data, GPS."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Camera Maker"
    exif[ExifTags.Base.Model] = "Model 7"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.ImageWidth] = width
    exif[ExifTags.Base.ImageLength] = height
    sub = exif.get_ifd(EXIF_IFD)
    sub[ExifTags.Base.DateTimeOriginal] = "2024:05:06 07:08:09"
    sub[ExifTags.Base.ExifImageWidth] = width
    sub[ExifTags.Base.ExifImageHeight] = height
    sub[ExifTags.Base.FNumber] = 2.8
    gps = exif.get_ifd(GPS_IFD)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    return exif.tobytes()[6:]  # without the "Exif\0\0" prefix, as ImageMetadata keeps it


def image(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)


FORMATS = [
    ("png", np.uint8, 3),
    ("png", np.uint16, 4),
    ("png", np.uint16, 3),
    ("jpg", np.uint8, 3),
    ("webp", np.uint8, 4),
    ("webp", np.uint8, 3),
    ("tif", np.uint16, 4),
    ("tif", np.uint8, 3),
]
LOSSLESS = ("png", "tif")


def decode_in_child(paths: list[Path]) -> str:
    """Decode every file with OpenCV in a child process; return what the C libraries printed.

    OpenCV's own warnings are left out: it warns about every RGBA TIFF it writes itself (no
    ExtraSamples tag), with or without metadata; libtiff's errors, and everything libpng and
    libjpeg print, still show.
    """
    code = (
        "import sys, cv2, numpy as np\n"
        "cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)\n"
        "for p in sys.argv[1:]:\n"
        "    a = cv2.imdecode(np.fromfile(p, np.uint8), cv2.IMREAD_UNCHANGED)\n"
        "    assert a is not None, p\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(("ext", "dtype", "channels"), FORMATS)
def test_icc_exif_and_provenance_survive_each_format(
    tmp_path: Path, ext: str, dtype: type, channels: int
) -> None:
    pixels = image((6, 9, channels), dtype)
    record = make_provenance(source="in.png", steps=[{"step": "sr", "params": {"t": "<&>ü"}}])
    path = write_image(
        tmp_path / f"out.{ext}",
        pixels,
        metadata=ImageMetadata(SRGB, camera_exif()),
        provenance=record,
    )
    with Image.open(path) as img:
        assert img.info.get("icc_profile") == SRGB
        exif = img.getexif()
        sub, gps = exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD)
    assert exif[ExifTags.Base.Orientation] == 1  # the pixels were turned upright on reading
    assert exif[ExifTags.Base.Make] == "Camera Maker" and exif[ExifTags.Base.Model] == "Model 7"
    assert (exif[ExifTags.Base.ImageWidth], exif[ExifTags.Base.ImageLength]) == (9, 6)
    assert (sub[ExifTags.Base.ExifImageWidth], sub[ExifTags.Base.ExifImageHeight]) == (9, 6)
    assert sub[ExifTags.Base.DateTimeOriginal] == "2024:05:06 07:08:09"
    assert float(sub[ExifTags.Base.FNumber]) == 2.8
    assert gps[ExifTags.GPS.GPSLatitudeRef] == "N"
    assert read_provenance(path) == record
    back = read_image(path)
    assert back.shape == pixels.shape and back.dtype == (dtype if ext in LOSSLESS else np.uint8)
    if ext in LOSSLESS:
        np.testing.assert_array_equal(back, pixels)
    assert decode_in_child([path]) == ""


def test_tiff_tags_are_where_tiff_readers_look(tmp_path: Path) -> None:
    import tifffile

    path = write_image(
        tmp_path / "out.tif",
        image((5, 7, 3), np.uint16),
        metadata=ImageMetadata(SRGB, camera_exif()),
        provenance={"made": "here"},
    )
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        tags = page.tags
        assert bytes(tags["InterColorProfile"].value) == SRGB
        assert NAMESPACE.encode() in bytes(tags["XMP"].value)
        assert tags["Make"].value == "Camera Maker"
        assert page.shape == (5, 7, 3) and page.dtype == np.uint16
        exif = tags["ExifTag"].value
        assert exif["DateTimeOriginal"] == "2024:05:06 07:08:09"


def test_rgba16_tree_keeps_16_bits_alpha_and_its_profile(
    tmp_path: Path, shared_images: Path
) -> None:
    source = shared_images / "rgba16_tree.png"
    with Image.open(source) as img:
        profile = img.info["icc_profile"]
    pixels, metadata = read_image_with_meta(source)
    assert metadata.icc_profile == profile
    for ext in ("png", "tif"):
        path = write_image(tmp_path / f"tree.{ext}", pixels, metadata=metadata)
        back = read_image(path)
        assert back.dtype == np.uint16 and back.shape == (256, 342, 4)
        np.testing.assert_array_equal(back, pixels)
        with Image.open(path) as img:
            assert img.info["icc_profile"] == profile
    assert decode_in_child([tmp_path / "tree.png", tmp_path / "tree.tif"]) == ""


def test_grey_profile_stays_with_a_grey_image(tmp_path: Path, shared_images: Path) -> None:
    pixels, metadata = read_image_with_meta(shared_images / "gray_wolf.jpg")
    assert pixels.ndim == 2 and metadata.icc_profile is not None
    path = write_image(tmp_path / "wolf.png", pixels, metadata=metadata)
    with Image.open(path) as img:
        assert img.info["icc_profile"] == metadata.icc_profile
        assert img.getexif()[ExifTags.Base.Software] == "Adobe Photoshop CC 2018 (Windows)"
    assert decode_in_child([path]) == ""


def test_a_profile_that_does_not_fit_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        path = write_image(tmp_path / "g.png", image((4, 4)), metadata=ImageMetadata(SRGB))
    with Image.open(path) as img:
        assert "icc_profile" not in img.info
    assert any("is for RGB data, not GRAY" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.WARNING):
        write_image(tmp_path / "b.png", image((4, 4, 3)), metadata=ImageMetadata(b"not icc"))
    assert any("is not a valid ICC profile" in r.getMessage() for r in caplog.records)


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """A little-endian EXIF block: IFD0 (Make, Orientation) and IFD1 holding a JPEG thumbnail.

    Built by hand: Pillow never writes IFD1, and the point is to see that we drop it.
    """
    entries0 = [(0x010F, 2, 4, b"Cam\0"), (0x0112, 3, 1, struct.pack("<HH", 6, 0))]
    ifd0_size = 2 + 12 * len(entries0) + 4
    ifd1_at = 8 + ifd0_size
    ifd1_size = 2 + 12 * 2 + 4
    thumb_at = ifd1_at + ifd1_size
    out = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries0))
    for tag, kind, count, value in entries0:
        out += struct.pack("<HHI", tag, kind, count) + value
    out += struct.pack("<I", ifd1_at) + struct.pack("<H", 2)
    out += struct.pack("<HHII", 0x0201, 4, 1, thumb_at)
    out += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    return out + struct.pack("<I", 0) + thumbnail


def test_thumbnail_is_dropped(tmp_path: Path) -> None:
    thumbnail = cv2.imencode(".jpg", image((8, 8, 3), seed=3))[1].tobytes()
    exif = exif_with_thumbnail(thumbnail)
    check = Image.Exif()
    check.load(exif)
    assert check.get_ifd(ExifTags.IFD.IFD1)  # the input really has a thumbnail
    for ext in ("jpg", "png", "webp", "tif"):
        path = write_image(
            tmp_path / f"t.{ext}", image((6, 6, 3)), metadata=ImageMetadata(exif=exif)
        )
        assert thumbnail not in path.read_bytes()
        with Image.open(path) as img:
            written = img.getexif()
        assert written[ExifTags.Base.Make] == "Cam" and written[ExifTags.Base.Orientation] == 1
        assert not written.get_ifd(ExifTags.IFD.IFD1)


def test_reading_keeps_metadata_upright(tmp_path: Path) -> None:
    """The EXIF of a rotated photo read back says orientation 1: the array is already upright."""
    path = tmp_path / "rot.jpg"
    Image.fromarray(image((4, 6, 3))).save(
        path, exif=b"Exif\0\0" + camera_exif(6, 4, 6), icc_profile=SRGB
    )
    pixels, metadata = read_image_with_meta(path)
    assert pixels.shape == (6, 4, 3)  # rotated by 90 degrees
    assert metadata == read_metadata(path)
    exif = Image.Exif()
    assert metadata.exif is not None
    exif.load(metadata.exif)
    assert exif[ExifTags.Base.Orientation] == 1 and exif[ExifTags.Base.Make] == "Camera Maker"
    assert metadata.icc_profile == SRGB


def test_tiff_input_layout_tags_are_not_carried(tmp_path: Path) -> None:
    source = write_image(
        tmp_path / "in.tif", image((5, 7, 3)), metadata=ImageMetadata(SRGB, camera_exif())
    )
    metadata = read_metadata(source)
    exif = Image.Exif()
    assert metadata.exif is not None
    exif.load(metadata.exif)
    for layout_tag in (258, 259, 273, 277, 279, 700, 34675):  # bits, compression, strips, XMP, ICC
        assert layout_tag not in exif
    assert exif[ExifTags.Base.Make] == "Camera Maker"
    out = write_image(tmp_path / "out.jpg", read_image(source), metadata=metadata)
    with Image.open(out) as img:
        assert img.getexif()[ExifTags.Base.Make] == "Camera Maker"
        assert img.info["icc_profile"] == SRGB


def test_no_metadata_writes_none(tmp_path: Path) -> None:
    for ext in ("png", "jpg", "webp", "tif"):
        path = write_image(tmp_path / f"plain.{ext}", image((4, 5, 3)))
        with Image.open(path) as img:
            assert "icc_profile" not in img.info and not img.getexif().get(ExifTags.Base.Make)
            assert not (img.info.get("xmp") or img.info.get("XML:com.adobe.xmp"))
        assert read_provenance(path) is None
        assert read_metadata(path) == ImageMetadata()


def test_bmp_holds_no_metadata(tmp_path: Path) -> None:
    path = write_image(
        tmp_path / "a.bmp", image((4, 4, 3)), metadata=ImageMetadata(SRGB), provenance={"a": 1}
    )
    assert read_provenance(path) is None and read_image(path).shape == (4, 4, 3)


def test_png_provenance_is_a_plain_text_chunk_too(tmp_path: Path) -> None:
    path = write_image(tmp_path / "p.png", image((3, 3, 3)), provenance={"steps": ["x"]})
    with Image.open(path) as img:
        assert json.loads(img.info["provenance"]) == {"steps": ["x"]}
        assert NAMESPACE in img.info["XML:com.adobe.xmp"]


def test_read_provenance_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    buffer = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("provenance", "{not json")
    Image.new("RGB", (2, 2)).save(buffer, "PNG", pnginfo=info)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ImageIOError, match="bad.png: the provenance record is not valid JSON"):
        read_provenance(path)
    with pytest.raises(ImageIOError, match="no such image file"):
        read_provenance(tmp_path / "missing.png")
    with pytest.raises(ImageIOError, match="not JSON-ready"):
        write_image(tmp_path / "x.png", image((2, 2, 3)), provenance={"bad": object()})
    assert not (tmp_path / "x.png").exists()


def test_provenance_too_large_for_jpeg_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        path = write_image(tmp_path / "big.jpg", image((4, 4, 3)), provenance={"x": "y" * 70000})
    assert read_provenance(path) is None
    assert any("does not fit a JPEG segment" in r.getMessage() for r in caplog.records)


def test_large_icc_profile_is_split_over_jpeg_segments(tmp_path: Path) -> None:
    """A JPEG segment holds 64 KB; a larger profile goes into numbered APP2 pieces."""
    body = SRGB + bytes(150_000)
    profile = len(body).to_bytes(4, "big") + body[4:]  # the size field says the new length
    path = write_image(tmp_path / "big.jpg", image((4, 4, 3)), metadata=ImageMetadata(profile))
    assert path.read_bytes().count(b"ICC_PROFILE\0") == 3
    with Image.open(path) as img:
        assert img.info["icc_profile"] == profile
    assert decode_in_child([path]) == ""


def test_the_api_exports_them_and_stays_light() -> None:
    """pipelines.api has the metadata functions; importing it loads no codec or array library."""
    code = (
        "import sys, pipelines.api as api\n"
        "names = {'ImageMetadata', 'make_provenance', 'read_image_with_meta', 'read_metadata',\n"
        "         'read_provenance', 'write_image'}\n"
        "assert names <= set(api.__all__), names - set(api.__all__)\n"
        "print(' '.join(sorted({'torch', 'dask', 'zarr', 'scipy', 'cv2', 'PIL'} & set(sys.modules))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
