"""Video files in and out: probing by content, frame-accurate reading, encoder settings, writing."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_clips import Clip, frames_of, make_clip

from pipelines.io.images import write_image
from pipelines.io.video.decode import read_frames
from pipelines.io.video.encode import write_video
from pipelines.io.video.errors import VideoError
from pipelines.io.video.index import FrameIndex, index_frames
from pipelines.io.video.probe import is_video, probe_video
from pipelines.io.video.segments import plan_segments
from pipelines.io.video.settings import EncodeSettings, even_size, muxer_for, resolve


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "mkv": make_clip(root / "h264.mkv", subtitles=True, rotation=90),
        "mp4": make_clip(root / "h264.mp4", rotation=-90),
        "ffv1": make_clip(root / "ffv1.mkv", codec="ffv1", pix_fmt="bgr0", audio="pcm_s16le"),
        "alpha": make_clip(root / "alpha.mkv", codec="ffv1", pix_fmt="bgra", audio=None),
        "10bit": make_clip(
            root / "x265.mkv",
            codec="libx265",
            pix_fmt="yuv420p10le",
            audio=None,
            options={"x265-params": "log-level=error"},
        ),
    }


def test_probe_describes_streams_timing_colour_rotation_and_chapters(
    clips: dict[str, Clip],
) -> None:
    info = probe_video(clips["mkv"].path)
    assert info.container.startswith("matroska")
    assert [(s.kind, s.language) for s in info.streams] == [
        ("video", "eng"),
        ("audio", "fra"),
        ("subtitle", "deu"),
    ]
    assert [s.codec for s in info.streams[:2]] == ["h264", "aac"]
    assert (info.codec, info.width, info.height, info.pix_fmt) == ("h264", 64, 48, "yuv420p")
    assert (info.bit_depth, info.dtype, info.channels, info.has_alpha) == (8, "uint8", 3, False)
    assert info.rotation == 90
    assert info.time_base == Fraction(1, 1000)
    assert info.metadata["title"] == "Test clip"
    assert [(c.title, c.start, c.end) for c in info.chapters] == [("One", 0, Fraction(3, 10))]
    assert info.colour.names()["matrix"] == "unspecified"
    assert probe_video(clips["mp4"].path).rotation == -90


def test_pixel_format_bit_depth_and_alpha_come_from_the_stream(clips: dict[str, Clip]) -> None:
    ten = probe_video(clips["10bit"].path)
    assert (ten.pix_fmt, ten.bit_depth, ten.dtype) == ("yuv420p10le", 10, "uint16")
    alpha = probe_video(clips["alpha"].path)
    assert (alpha.has_alpha, alpha.channels) == (True, 4)


def test_a_video_is_recognised_by_content_not_suffix(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    renamed = tmp_path / "clip.dat"
    shutil.copy(clips["mkv"].path, renamed)
    assert is_video(renamed) and probe_video(renamed).codec == "h264"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(VideoError, match=r"notes\.mp4: not a video"):
        probe_video(text)
    picture = tmp_path / "still.png"
    write_image(picture, frames_of(1)[0])
    assert not is_video(picture)
    subs_only = tmp_path / "subs.srt"
    subs_only.write_text("1\n00:00:00,000 --> 00:00:01,000\nHi\n\n")
    with pytest.raises(VideoError, match=r"subs\.srt: no video stream \(streams: subtitle"):
        probe_video(subs_only)


@pytest.mark.parametrize("name", ["mkv", "mp4", "ffv1"])
def test_index_keeps_every_variable_rate_timestamp_and_keyframe(
    clips: dict[str, Clip], name: str
) -> None:
    clip = clips[name]
    index = index_frames(probe_video(clip.path))
    times = [round(float(p * index.time_base) * 1000) for p in index.pts]
    assert times == clip.pts  # gaps of 40 and 80 ms, B-frames or not
    assert index.keyframes.tolist() == [0, 4, 8, 12, 16]
    assert index.keyframe_before(7) == 4 and index.keyframe_before(8) == 8


@pytest.mark.parametrize("name", ["mkv", "mp4"])
def test_a_frame_range_decodes_to_the_same_frames_as_the_whole_video(
    clips: dict[str, Clip], name: str
) -> None:
    path = clips[name].path
    whole = read_frames(path)
    assert whole.shape == (20, 48, 64, 3) and whole.dtype == np.uint8
    for start, stop in [(0, 3), (5, 11), (13, 20), (19, 20), (6, 6)]:
        np.testing.assert_array_equal(read_frames(path, start, stop), whole[start:stop])


def test_lossless_clips_decode_to_exactly_the_frames_written(clips: dict[str, Clip]) -> None:
    np.testing.assert_array_equal(read_frames(clips["ffv1"].path), clips["ffv1"].frames)
    alpha = read_frames(clips["alpha"].path)
    assert alpha.shape[3] == 4
    np.testing.assert_array_equal(alpha, clips["alpha"].frames)


def test_a_ten_bit_clip_reads_as_uint16(clips: dict[str, Clip]) -> None:
    frames = read_frames(clips["10bit"].path)
    assert frames.dtype == np.uint16
    written = clips["10bit"].frames.astype(np.float64) * 257
    assert np.mean(np.abs(frames - written)) < 0.03 * 65535  # lossy, but the same picture


def test_a_truncated_file_is_refused_naming_the_damage_or_cut_before_it(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    data = clips["ffv1"].path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError, match=r"cut\.mkv: damaged: .*keep_damaged"):
        read_frames(cut)
    kept = read_frames(cut, keep_damaged=True)
    assert 0 < len(kept) < 20
    np.testing.assert_array_equal(kept, clips["ffv1"].frames[: len(kept)])


def _index(count: int, keyframes: list[int]) -> FrameIndex:
    frames = np.arange(count, dtype=np.int64)
    return FrameIndex(frames, np.ones(count, dtype=np.int64), np.array(keyframes), Fraction(1, 25))


def test_segments_start_at_nearby_keyframes_or_at_fixed_counts() -> None:
    every_four = plan_segments(_index(20, [0, 4, 8, 12, 16]), 6)
    assert all(start in (0, 4, 8, 12, 16) for start, _ in every_four)
    one_keyframe = plan_segments(_index(20, [0]), 6)
    assert one_keyframe == [(0, 6), (6, 12), (12, 18), (18, 20)]
    assert plan_segments(_index(17, [0]), 8) == [(0, 8), (8, 17)]  # a tail under 8/4 is merged
    for plan in (every_four, one_keyframe, plan_segments(_index(7, [0]), 100)):
        starts, stops = zip(*plan, strict=True)
        assert starts[0] == 0 and list(starts[1:]) == list(stops[:-1])  # contiguous, no gaps


def test_default_encoders_per_container_and_depth() -> None:
    plain = resolve(EncodeSettings(), "out.mp4", 64, 48, 8, False)
    assert (plain.codec, plain.pix_fmt, plain.options["crf"], plain.options["preset"]) == (
        "libx264",
        "yuv420p",
        "18",
        "medium",
    )
    assert resolve(EncodeSettings(), "out.mkv", 64, 48, 8, False).codec == "libx264"
    assert resolve(EncodeSettings(), "out.mov", 64, 48, 8, False).codec == "libx264"
    webm = resolve(EncodeSettings(), "out.webm", 64, 48, 8, True)
    assert (webm.codec, webm.pix_fmt, webm.keeps_alpha) == ("libvpx-vp9", "yuva420p", True)
    assert resolve(EncodeSettings(), "out.mp4", 64, 48, 10, False).pix_fmt == "yuv420p10le"
    hevc = resolve(EncodeSettings(codec="libx265"), "out.mp4", 64, 48, 10, False)
    assert (hevc.pix_fmt, hevc.options["crf"]) == ("yuv420p10le", "20")
    lossless = {
        (depth, alpha): resolve(EncodeSettings(codec="ffv1"), "o.mkv", 64, 48, depth, alpha).pix_fmt
        for depth in (8, 10, 16)
        for alpha in (False, True)
    }
    assert lossless == {
        (8, False): "bgr0",
        (8, True): "bgra",
        (10, False): "gbrp10le",
        (10, True): "gbrap10le",
        (16, False): "gbrp16le",
        (16, True): "gbrap16le",
    }
    prores = resolve(EncodeSettings(codec="prores_ks"), "o.mov", 64, 48, 8, True)
    assert (prores.pix_fmt, prores.options["profile"]) == ("yuva444p10le", "4")
    assert muxer_for("o.webm") == "webm"


@pytest.mark.parametrize(
    ("path", "settings", "depth", "alpha", "message"),
    [
        ("o.mp4", {}, 8, True, r"o\.mp4: libx264 cannot store the input's alpha channel"),
        ("o.mp4", {"codec": "libnothing"}, 8, False, r"encoder 'libnothing' is not in this FFmpeg"),
        ("o.mp4", {"codec": "aac"}, 8, False, r"aac is an audio encoder, not a video encoder"),
        ("o.xyz", {}, 8, False, r"o\.xyz: FFmpeg has no muxer for \.xyz files"),
        ("o.avi", {}, 8, False, r"o\.avi: AVI stores no presentation timestamps"),
        ("o.gif", {"codec": "libx264"}, 8, False, r"o\.gif: GIF is written with the gif encoder"),
        ("o.gif", {"crf": 10, "preset": "slow"}, 8, False, r"crf, preset does not apply"),
        ("o.gif", {"pix_fmt": "rgb24"}, 8, False, r"pix_fmt rgb24 does not apply"),
        ("o.webm", {"codec": "libx264"}, 8, False, r"the webm container cannot hold libx264"),
        ("o.webm", {}, 10, False, r"libvpx-vp9 has no pixel format above 8 bits"),
        ("o.mkv", {"codec": "ffv1", "crf": 10}, 8, False, r"ffv1 has no crf setting"),
        ("o.mp4", {"crf": 60}, 8, False, r"crf 60 is out of range for libx264"),
        ("o.mp4", {"pix_fmt": "bgra"}, 8, False, r"libx264 cannot encode pixel format bgra"),
        ("o.webm", {"preset": "fast"}, 8, False, r"libvpx-vp9 has no presets"),
    ],
)
def test_settings_that_cannot_work_are_refused_in_one_line(
    path: str, settings: dict[str, object], depth: int, alpha: bool, message: str
) -> None:
    with pytest.raises(VideoError, match=message) as caught:
        resolve(EncodeSettings.model_validate(settings), path, 64, 48, depth, alpha)
    assert "\n" not in str(caught.value)


def test_alpha_may_be_dropped_on_purpose_with_a_pixel_format() -> None:
    chosen = resolve(EncodeSettings(pix_fmt="yuv420p"), "o.mp4", 64, 48, 8, True)
    assert (chosen.pix_fmt, chosen.keeps_alpha) == ("yuv420p", False)


def test_odd_sizes_round_down_to_what_the_pixel_format_holds() -> None:
    assert even_size("yuv420p", 65, 49) == (64, 48)
    assert even_size("yuv422p", 65, 49) == (64, 49)
    assert even_size("yuv444p", 65, 49) == (65, 49)
    assert even_size("gbrp", 65, 49) == (65, 49)
    odd = resolve(EncodeSettings(), "o.mp4", 65, 49, 8, False)
    assert (odd.width, odd.height, odd.cropped) == (64, 48, True)


def test_odd_frames_lose_their_last_row_and_column_in_420_and_stay_whole_in_rgb(
    tmp_path: Path,
) -> None:
    frames = frames_of(4, height=49, width=65)
    write_video(tmp_path / "odd.mp4", frames, EncodeSettings(crf=0, preset="ultrafast"))
    cut = read_frames(tmp_path / "odd.mp4")
    assert cut.shape == (4, 48, 64, 3)
    assert np.abs(cut.astype(int) - frames[:, :48, :64]).mean() < 2  # the same picture, cropped
    write_video(tmp_path / "odd.mkv", frames, EncodeSettings(codec="ffv1"))
    np.testing.assert_array_equal(read_frames(tmp_path / "odd.mkv"), frames)


@pytest.mark.parametrize(
    "frames",
    [
        frames_of(5),
        frames_of(5, alpha=True),
        frames_of(5).astype(np.uint16) * 257 + 3,
    ],
    ids=["rgb8", "rgba8", "rgb16"],
)
def test_ffv1_in_rgb_round_trips_exactly(tmp_path: Path, frames: np.ndarray) -> None:
    out = write_video(tmp_path / "lossless.mkv", frames, EncodeSettings(codec="ffv1"), fps=30)
    np.testing.assert_array_equal(read_frames(out), frames)
    index = index_frames(probe_video(out))
    times = [float(p * index.time_base) for p in index.pts]
    assert times == pytest.approx([n / 30 for n in range(5)], abs=1e-3)  # Matroska keeps ms


def test_write_video_refuses_an_existing_output_and_leaves_nothing_on_failure(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.mkv"
    target.write_bytes(b"keep me")
    with pytest.raises(VideoError, match=r"out\.mkv: output exists"):
        write_video(target, frames_of(2))
    assert target.read_bytes() == b"keep me"
    with pytest.raises(VideoError, match="frames must be"):
        write_video(tmp_path / "bad.mkv", np.zeros((2, 8, 8), dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_a_gif_output_is_planned_as_lossless_segments_transcoded_at_the_join() -> None:
    from pipelines.io.video.settings import PALETTE_CONTAINERS

    plain = resolve(EncodeSettings(), "o.gif", 65, 49, 16, False)
    assert plain.container in PALETTE_CONTAINERS and plain.codec == "ffv1"
    assert (plain.pix_fmt, plain.width, plain.height, plain.cropped) == ("bgr0", 65, 49, False)
    alpha = resolve(EncodeSettings(codec="gif"), "o.gif", 64, 48, 8, True)
    assert (alpha.pix_fmt, alpha.keeps_alpha) == ("bgra", True)


def test_gif_stamps_are_hundredths_strictly_increasing() -> None:
    from pipelines.io.video.palette import gif_stamps

    pts = np.array([1000, 1040, 1045, 1046, 1120], np.int64)  # ms: 40, 5, 1 and 74 ms gaps
    index = FrameIndex(pts, np.full(5, 40), np.array([0]), Fraction(1, 1000))
    assert gif_stamps(index).tolist() == [0, 4, 5, 6, 12]


def test_a_gif_sources_loop_count_is_kept(tmp_path: Path) -> None:
    from PIL import Image

    from pipelines.io.video.palette import source_loop

    frames = [Image.fromarray(frame) for frame in frames_of(2, 8, 8)]
    for name, extra in (("once", {}), ("forever", {"loop": 0}), ("three", {"loop": 3})):
        frames[0].save(tmp_path / f"{name}.gif", save_all=True, append_images=frames[1:], **extra)
    loops = [source_loop(probe_video(tmp_path / f"{n}.gif")) for n in ("once", "forever", "three")]
    assert loops == [-1, 0, 3]
    assert source_loop(None) == 0
