"""``esrgan upscale``'s outputs: videos (sound and timing kept, the lossless path equal to the
per-frame image upscale, resumption), metadata and provenance in images, uncertainty maps, and
the refusals made before any work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from esrgan_plugin import UpscaleOptions, Upscaler, load_model
from esrgan_plugin.cli import main
from pipelines.api import read_frames, read_image, read_metadata, read_provenance, write_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from video_clips import frames_of, make_clip, packets, video_times  # noqa: E402

av = pytest.importorskip("av")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_tiny(tmp_path / "tiny.safetensors")


def test_a_clip_with_sound_keeps_sound_and_timing(tmp_path: Path, model: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", count=12, height=24, width=32)
    out = tmp_path / "clip_x4.mp4"
    assert main(["upscale", str(clip.path), "-o", str(out), "--model", str(model)]) == 0
    frames = read_frames(out)
    assert frames.shape == (12, 96, 128, 3)
    assert video_times(out) == pytest.approx(video_times(clip.path), abs=1e-3)
    assert [p for _, p in packets(out, "audio")] == [p for _, p in packets(clip.path, "audio")]
    with av.open(str(out)) as container:
        record = json.loads(container.metadata["provenance"])
        assert container.metadata.get("title") == "Test clip"
    assert record["steps"][0]["stage"] == "esrgan.upscale"
    assert len(record["steps"][0]["provenance"]["model"]["sha256"]) == 64


def test_the_lossless_path_equals_the_per_frame_image_upscale(tmp_path: Path, model: Path) -> None:
    clip = make_clip(
        tmp_path / "clip.mkv",
        codec="ffv1",
        pix_fmt="bgr0",
        count=5,
        height=20,
        width=26,
        audio=None,
    )
    out = tmp_path / "out.mkv"
    args = ["upscale", str(clip.path), "-o", str(out), "--model", str(model)]
    assert main([*args, "--video-codec", "ffv1"]) == 0
    upscaler = Upscaler(load_model(model), UpscaleOptions())
    expected = np.stack([upscaler.upscale(frame) for frame in read_frames(clip.path)])
    np.testing.assert_array_equal(read_frames(out), expected)


def test_a_folder_of_images_and_videos(tmp_path: Path, model: Path) -> None:
    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    make_clip(folder / "a" / "clip.mp4", count=4, height=16, width=16, audio=None)
    write_image(folder / "b" / "photo.png", random_image(10, 12))
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "-o", str(out), "--model", str(model)]) == 0
    assert read_frames(out / "a" / "clip.mp4").shape == (4, 64, 64, 3)
    assert (out / "b" / "photo.png").is_file()


def test_animated_gifs_stay_gifs_and_still_ones_are_images(tmp_path: Path, model: Path) -> None:
    """An animated GIF is upscaled into a GIF (a palette per frame; timing, loop count and
    transparency kept) and is close to the lossless path; a GIF of one frame is an image."""
    from PIL import Image

    colour = frames_of(3, height=12, width=16)
    pixels = np.concatenate([colour, np.full_like(colour[..., :1], 255)], axis=-1)
    pixels[:, :4, :4, 3] = 0  # a transparent corner
    frames = [Image.fromarray(frame, "RGBA") for frame in pixels]
    gif = tmp_path / "in" / "anim.gif"
    gif.parent.mkdir()
    frames[0].save(
        gif, save_all=True, append_images=frames[1:], duration=[80, 120, 200], loop=2, disposal=2
    )
    frames[1].convert("RGB").save(gif.parent / "still.gif")  # one frame: an image, written as PNG
    out = tmp_path / "out"
    assert main(["upscale", str(gif.parent), "-o", str(out), "--model", str(model)]) == 0
    assert read_image(out / "still.png").shape == (48, 64, 3)
    written = read_frames(out / "anim.gif")
    lossless = tmp_path / "anim.mkv"
    args = ["upscale", str(gif), "-o", str(lossless), "--model", str(model)]
    assert main([*args, "--video-codec", "ffv1"]) == 0
    expected = read_frames(lossless)
    assert written.shape == expected.shape == (3, 48, 64, 4)
    opaque = expected[..., 3] >= 128
    assert np.array_equal(written[..., 3] >= 128, opaque)  # GIF's one-bit transparency
    error = (written[..., :3].astype(float) - expected[..., :3])[opaque]
    assert 10 * np.log10(255**2 / np.mean(error**2)) > 35  # a palette per frame, dithered
    with Image.open(out / "anim.gif") as image:
        assert image.info["loop"] == 2
        delays = []
        for n in range(3):
            image.seek(n)
            delays.append(image.info["duration"])
    assert delays == [80, 120, 200]


def test_an_interrupted_job_resumes_and_a_changed_model_is_refused(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job folder's fingerprint holds the model's SHA-256: the same command resumes,
    another model is refused until --restart."""
    from esrgan_plugin.cli import video

    clip = make_clip(tmp_path / "clip.mp4", count=12, height=16, width=16, keyint=4, audio=None)
    out = tmp_path / "out.mp4"
    args = ["upscale", str(clip.path), "-o", str(out), "--model", str(model)]
    args += ["--video-codec", "ffv1", "--pix-fmt", "bgr0", "--segment-frames", "4"]
    real = video.UpscaleFrames.__call__
    calls: list[int] = []

    def dies_late(self: video.UpscaleFrames, frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        if sum(calls) > 8:
            raise video.VideoError("simulated crash")
        return real(self, frames)

    with monkeypatch.context() as patch:
        patch.setattr(video.UpscaleFrames, "__call__", dies_late)
        assert main(args) == 1
    assert not out.exists()
    other = save_tiny(tmp_path / "other.safetensors", nf=12)
    changed = [a if a != str(model) else str(other) for a in args]
    assert main(changed) == 1
    assert "restart" in capsys.readouterr().err and not out.exists()
    capsys.readouterr()
    assert main(args) == 0
    assert "reused" in capsys.readouterr().err
    upscaler = Upscaler(load_model(model), UpscaleOptions())
    expected = np.stack([upscaler.upscale(frame) for frame in read_frames(clip.path)])
    assert read_frames(out).shape == expected.shape


@pytest.mark.parametrize(
    ("name", "output", "message"),
    [
        ("notes.txt", "out.png", "neither an image"),
        ("clip.mp4", "out.png", "unknown output format '.png' for a video"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(
    tmp_path: Path,
    model: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    output: str,
    message: str,
) -> None:
    source = tmp_path / name
    if name.endswith(".mp4"):
        make_clip(source, count=2, height=16, width=16, audio=None)
    else:
        source.write_text("hello")
    assert main(["upscale", str(source), "-o", str(tmp_path / output), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / output).exists()


def test_images_keep_icc_and_exif_and_say_how_they_were_made(tmp_path: Path, model: Path) -> None:
    from PIL import Image, ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "ACME camera"
    source = tmp_path / "in.png"
    Image.fromarray(random_image(10, 12)).save(source, icc_profile=profile, exif=exif.tobytes())
    out = tmp_path / "out.png"
    assert main(["upscale", str(source), "-o", str(out), "--model", str(model)]) == 0
    meta = read_metadata(out)
    assert meta.icc_profile == profile and meta.exif is not None
    with Image.open(out) as image:
        assert image.getexif()[0x010F] == "ACME camera"
    record = read_provenance(out)
    assert record is not None and record["command"][:2] == ["esrgan", "upscale"]
    facts = record["steps"][0]["provenance"]
    assert facts["model"]["sha256"] == __import__("hashlib").sha256(model.read_bytes()).hexdigest()
    assert {"engine", "precision", "halo", "tile"} <= set(facts)
    bare = tmp_path / "bare.png"
    args = ["upscale", str(source), "-o", str(bare), "--model", str(model), "--no-metadata"]
    assert main(args) == 0
    assert read_provenance(bare) is None and read_metadata(bare).empty


def test_an_unwritable_output_is_refused_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    import esrgan_plugin.engines.upscalers as upscalers

    source = write_image(tmp_path / "in.png", random_image(8, 8))

    def no_write(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", no_write)
    monkeypatch.setattr(upscalers, "upscaler_for", lambda *a: pytest.fail("model loaded"))
    assert main(["upscale", str(source), "-o", str(tmp_path / "ro" / "out.png")]) == 2
    err = capsys.readouterr().err
    assert "cannot write there (Permission denied" in err and err.count("\n") == 1


def test_fp16_on_the_cpu_is_refused_without_torch(tmp_path: Path) -> None:
    import subprocess

    source = write_image(tmp_path / "in.png", random_image(8, 8))
    code = (
        "import sys\nfrom esrgan_plugin.cli import main\n"
        f"code = main(['upscale', {str(source)!r}, '-o', {str(tmp_path / 'o.png')!r}, "
        "'--precision', 'fp16', '--device', 'cpu'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False"]
    assert "precision fp16 is not supported on the CPU" in result.stderr


def test_a_misspelt_model_name_is_reported_without_torch(tmp_path: Path) -> None:
    import subprocess

    source = write_image(tmp_path / "in.png", random_image(8, 8))
    code = (
        "import sys\nfrom esrgan_plugin.cli import main\n"
        f"code = main(['upscale', {str(source)!r}, '-o', {str(tmp_path / 'o.png')!r}, "
        "'--model', 'realesrgan-x4plu'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["1", "False"]
    assert "did you mean realesrgan-x4plus?" in result.stderr


def test_uncertainty_maps_beside_the_outputs(tmp_path: Path, model: Path) -> None:
    from pipelines.api import read_image

    source = write_image(tmp_path / "in.png", random_image(12, 10))
    out, heat = tmp_path / "out.png", tmp_path / "map.png"
    args = [
        "upscale",
        str(source),
        "-o",
        str(out),
        "--model",
        str(model),
        "--uncertainty",
        str(heat),
    ]
    assert main(args) == 0
    spread = read_image(heat)
    assert spread.shape == (48, 40) and spread.dtype == np.uint16 and spread.max() > 0
    record = read_provenance(heat)
    assert record is not None and record["steps"][0]["stage"] == "esrgan.uncertainty"
    plain = Upscaler(load_model(model), UpscaleOptions()).upscale(read_image(source))
    np.testing.assert_array_equal(read_image(out), plain)  # the map costs the output nothing


def test_uncertainty_refusals(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_image(tmp_path / "in.png", random_image(8, 8))
    base = ["upscale", str(source), "-o", str(tmp_path / "o.png"), "--model", str(model)]
    assert main([*base, "--uncertainty-reference", str(model)]) == 2
    assert "needs --uncertainty MAP" in capsys.readouterr().err
    assert main([*base, "--uncertainty", str(tmp_path / "map.jpg")]) == 2
    assert "expected one of .png" in capsys.readouterr().err
    clip = make_clip(tmp_path / "clip.mp4", count=2, height=16, width=16, audio=None)
    video = ["upscale", str(clip.path), "-o", str(tmp_path / "v.mp4"), "--model", str(model)]
    assert main([*video, "--uncertainty", str(tmp_path / "m.png")]) == 2
    assert "not videos" in capsys.readouterr().err
