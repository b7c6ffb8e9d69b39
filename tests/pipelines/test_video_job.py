"""transform_video: a per-frame function over a whole video as a resumable segment job.

The frame function is nearest-neighbour x2 (``video_clips.x2``); lossless ffv1 outputs are
compared exactly with it applied to the decoded source, lossy ones by their timing and streams.
"""

from __future__ import annotations

import io
import logging
import tracemalloc
from pathlib import Path

import av
import dask
import numpy as np
import pytest
from video_clips import Clip, make_clip, packets, video_times, x2

from pipelines.io.video.decode import read_frames
from pipelines.io.video.errors import VideoError
from pipelines.io.video.job import job_folder
from pipelines.io.video.probe import probe_video
from pipelines.io.video.transform import transform_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "ffv1": make_clip(root / "ffv1.mkv", codec="ffv1", pix_fmt="bgr0", audio="pcm_s16le"),
        "mkv": make_clip(root / "h264.mkv", subtitles=True, rotation=90),
        "alpha": make_clip(root / "alpha.mkv", codec="ffv1", pix_fmt="bgra", audio=None),
        "10bit": make_clip(
            root / "x265.mkv",
            codec="libx265",
            pix_fmt="yuv420p10le",
            audio=None,
            options={"x265-params": "log-level=error"},
        ),
    }


class Failing:
    """x2, but raising on the frame equal to ``bad`` (picklable; counts the frames it saw)."""

    def __init__(self, bad: np.ndarray | None) -> None:
        self.bad = bad
        self.seen = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.seen += len(frames)
        if self.bad is not None and any(np.array_equal(f, self.bad) for f in frames):
            raise RuntimeError("the frame function failed")
        return x2(frames)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_lossless_job_equals_the_per_frame_function_and_keeps_timing_sound_and_tags(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ffv1"]
    out = tmp_path / "out.mkv"
    said = io.StringIO()
    result = transform_video(
        clip.path, out, x2, 2.0, {"codec": "ffv1"}, progress=said, segment_frames=6, batch_frames=4
    )
    np.testing.assert_array_equal(read_frames(out), x2(read_frames(clip.path)))
    assert video_times(out) == video_times(clip.path)  # variable frame rate kept
    assert packets(out, "audio") == packets(clip.path, "audio")  # copied, not re-encoded
    info = probe_video(out)
    assert info.metadata["title"] == "Test clip"
    assert [c.title for c in info.chapters] == ["One"]
    assert [s.language for s in info.streams] == ["eng", "fra"]
    assert (result.frames, result.reused_frames) == (20, 0)
    assert result.segments > 1
    text = said.getvalue()
    assert "20/20 frames | 100% Completed" in text
    assert f"wrote {out}: 20 frames in" in text and "frames/s" in text
    assert leftovers(tmp_path) == ["out.mkv"]  # job folder and lock gone


def test_h264_to_mp4_and_mkv_keeps_frames_timing_audio_subtitles_and_rotation(
    clips: dict[str, Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = clips["mkv"]
    with caplog.at_level(logging.WARNING):
        transform_video(clip.path, tmp_path / "out.mp4", x2, 2.0, segment_frames=8)
    assert "subtitle" in caplog.text and "not copied" in caplog.text  # mp4 holds no SubRip
    transform_video(clip.path, tmp_path / "out.mkv", x2, 2.0, segment_frames=8)
    source = read_frames(clip.path)
    for out in (tmp_path / "out.mp4", tmp_path / "out.mkv"):
        info = probe_video(out)
        assert (info.codec, info.width, info.height, info.rotation) == ("h264", 128, 96, 90)
        assert video_times(out) == pytest.approx(video_times(clip.path), abs=1e-6)
        assert packets(out, "audio") == packets(clip.path, "audio")
        frames = read_frames(out)
        assert np.abs(frames.astype(int) - x2(source)).mean() < 3  # crf 18: visually the same
    assert packets(tmp_path / "out.mkv", "subtitle") == packets(clip.path, "subtitle")
    assert [c.title for c in probe_video(tmp_path / "out.mp4").chapters] == ["One"]


def test_matroska_attachments_are_kept(clips: dict[str, Clip], tmp_path: Path) -> None:
    source = tmp_path / "fonts.mkv"
    with av.open(str(clips["ffv1"].path)) as clip, av.open(str(source), "w") as out:
        video = out.add_stream_from_template(clip.streams.video[0])
        out.add_attachment("font.ttf", "application/x-truetype-font", b"FONT" * 8)
        for packet in clip.demux(clip.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    transform_video(source, tmp_path / "out.mkv", x2, 2.0, {"codec": "ffv1"})
    with av.open(str(tmp_path / "out.mkv")) as out:
        kept = [
            (s.metadata.get("filename"), bytes(s.data))
            for s in out.streams
            if s.type == "attachment"
        ]
    assert kept == [("font.ttf", b"FONT" * 8)]


def test_containers_without_negative_timestamps_shift_every_stream_alike(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    """MPEG-TS cannot start at a negative decode time: video and sound move by the same offset."""
    clip = clips["mkv"]
    out = tmp_path / "out.ts"
    transform_video(clip.path, out, x2, 2.0, segment_frames=8)
    shift = video_times(out)[0] - video_times(clip.path)[0]
    assert video_times(out) == pytest.approx([t + shift for t in video_times(clip.path)], abs=1e-4)
    sound, source_sound = packets(out, "audio"), packets(clip.path, "audio")
    adts = [p[7:] if p[:2] == b"\xff\xf1" else p for _, p in sound]  # TS frames AAC in ADTS
    assert adts == [p for _, p in source_sound]  # copied, not re-encoded
    assert sound[0][0] - source_sound[0][0] == pytest.approx(shift, abs=1e-3)  # still in sync


def test_alpha_is_kept_where_the_codec_can_hold_it_and_refused_where_it_cannot(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["alpha"]
    source = read_frames(clip.path)
    transform_video(clip.path, tmp_path / "a.mkv", x2, 2.0, {"codec": "ffv1"})
    np.testing.assert_array_equal(read_frames(tmp_path / "a.mkv"), x2(source))
    transform_video(clip.path, tmp_path / "a.webm", x2, 2.0)
    transform_video(clip.path, tmp_path / "a.mov", x2, 2.0, {"codec": "prores_ks"})
    for out in ("a.webm", "a.mov"):
        frames = read_frames(tmp_path / out)
        assert probe_video(tmp_path / out).has_alpha and frames.shape[3] == 4
        alpha = frames[..., 3] if frames.dtype == np.uint8 else frames[..., 3] / 257
        assert np.abs(alpha - x2(source)[..., 3]).mean() < 2
    with pytest.raises(VideoError, match=r"a\.mp4: libx264 cannot store the input's alpha"):
        transform_video(clip.path, tmp_path / "a.mp4", x2, 2.0)
    assert not (tmp_path / "a.mp4").exists() and not job_folder(tmp_path / "a.mp4").exists()


def test_ten_bit_input_gives_ten_bit_output(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["10bit"]
    transform_video(clip.path, tmp_path / "t.mp4", x2, 2.0, segment_frames=10)
    assert probe_video(tmp_path / "t.mp4").pix_fmt == "yuv420p10le"
    transform_video(clip.path, tmp_path / "t.mkv", x2, 2.0, {"codec": "ffv1"})
    assert probe_video(tmp_path / "t.mkv").pix_fmt == "gbrp10le"
    lossless = read_frames(tmp_path / "t.mkv")
    np.testing.assert_array_equal(lossless >> 6, x2(read_frames(clip.path)) >> 6)  # 10 bits kept


def test_a_failed_job_resumes_with_the_segments_it_finished(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ffv1"]
    out = tmp_path / "out.mkv"
    failing = Failing(read_frames(clip.path, 17, 18)[0])  # in the last segment
    with pytest.raises(RuntimeError, match="the frame function failed"):
        transform_video(
            clip.path, out, failing, 2.0, {"codec": "ffv1"}, executor="threads", segment_frames=6
        )
    assert not out.exists()
    records = sorted(job_folder(out).glob("seg-*.json"))
    assert records and not list(job_folder(out).glob("*.partial"))

    working = Failing(None)
    said = io.StringIO()
    result = transform_video(
        clip.path, out, working, 2.0, {"codec": "ffv1"}, segment_frames=6, progress=said
    )
    assert result.reused_frames > 0
    assert working.seen == 20 - result.reused_frames  # only the segments not finished before
    assert f"({result.reused_frames} of 20 frames reused)" in said.getvalue()
    assert f"({result.reused_frames} reused from an earlier run)" in said.getvalue()
    np.testing.assert_array_equal(read_frames(out), x2(read_frames(clip.path)))
    transform_video(clip.path, tmp_path / "ref.mkv", x2, 2.0, {"codec": "ffv1"}, segment_frames=6)
    assert packets(out, "video") == packets(tmp_path / "ref.mkv", "video")  # the same bytes
    assert not job_folder(out).exists()


def test_a_job_left_by_another_fingerprint_or_setting_is_refused_until_restarted(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ffv1"]
    out = tmp_path / "out.mkv"
    bad = read_frames(clip.path, 17, 18)[0]
    job = {"fingerprint": {"model": "a.safetensors"}, "segment_frames": 6}
    with pytest.raises(RuntimeError):
        transform_video(clip.path, out, Failing(bad), 2.0, {"codec": "ffv1"}, **job)
    with pytest.raises(VideoError, match=r"made with other caller\.model; restart it") as caught:
        transform_video(
            clip.path, out, x2, 2.0, {"codec": "ffv1"}, fingerprint={"model": "b"}, segment_frames=6
        )
    assert "\n" not in str(caught.value)
    with pytest.raises(VideoError, match=r"made with other encoding\.codec"):
        transform_video(clip.path, out, x2, 2.0, {"codec": "libx264"}, **job)
    fresh = Failing(None)
    result = transform_video(clip.path, out, fresh, 2.0, {"codec": "libx264"}, restart=True, **job)
    assert (result.reused_frames, fresh.seen) == (0, 20)


def test_an_existing_output_is_refused_and_overwritten_only_when_asked(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    out = tmp_path / "out.mkv"
    out.write_bytes(b"old")
    with pytest.raises(VideoError, match=r"out\.mkv: output exists"):
        transform_video(clips["ffv1"].path, out, x2, 2.0)
    assert out.read_bytes() == b"old"
    transform_video(clips["ffv1"].path, out, x2, 2.0, overwrite=True)
    assert probe_video(out).width == 128


def test_the_output_is_locked_for_the_job_unless_the_caller_holds_the_lock(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    from pipelines.io.locks import OutputLockedError, output_lock

    out = tmp_path / "out.mkv"
    with output_lock(out):  # as a command writing several outputs holds it
        with pytest.raises(OutputLockedError, match="is writing this output"):
            transform_video(clips["ffv1"].path, out, x2, 2.0)
        transform_video(clips["ffv1"].path, out, x2, 2.0, lock=False)
    assert probe_video(out).width == 128


def test_a_frame_function_that_breaks_its_promise_is_named(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    with pytest.raises(
        VideoError,
        match=r"the frame function returned uint8 \(.+, 96, 128, 3\).* expected uint8 \(.+, 144, 192, 3\)",
    ):
        transform_video(clips["ffv1"].path, tmp_path / "o.mkv", x2, 3.0)
    assert not (tmp_path / "o.mkv").exists()


def test_a_declared_size_overrides_the_scale_and_bad_arguments_are_one_line(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    def crop_x2(frames: np.ndarray) -> np.ndarray:  # rounds down where round() would not
        return x2(frames)[:, :95, :127]

    transform_video(
        clips["ffv1"].path, tmp_path / "o.mkv", crop_x2, 1.99, {"codec": "ffv1"}, size=(95, 127)
    )
    assert read_frames(tmp_path / "o.mkv").shape == (20, 95, 127, 3)
    for bad, message in [
        ({"settings": {"codecc": "x"}}, r"settings \{'codecc': 'x'\}: codecc: Extra inputs"),
        ({"settings": {"crf": 99}}, r"crf: input should be less than or equal to 63"),
        ({"executor": "bogus"}, r"executor 'bogus': type 'bogus' is not one of"),
    ]:
        with pytest.raises(VideoError, match=message):
            transform_video(clips["ffv1"].path, tmp_path / "bad.mp4", x2, 2.0, **bad)
    assert not (tmp_path / "bad.mp4").exists()


def test_peak_memory_follows_the_segment_not_the_video(tmp_path: Path) -> None:
    """Frames held by the job (NumPy, traced) stay a few batches, however long the video is.

    FFmpeg's own buffers (not traced) are per encoder and decoder: also independent of length.
    """
    short = make_clip(
        tmp_path / "short.mkv",
        codec="ffv1",
        pix_fmt="bgr0",
        count=12,
        height=96,
        width=128,
        audio=None,
    )
    long = make_clip(
        tmp_path / "long.mkv",
        codec="ffv1",
        pix_fmt="bgr0",
        count=60,
        height=96,
        width=128,
        audio=None,
    )
    transform_video(short.path, tmp_path / "warm.mkv", x2, 2.0, {"codec": "ffv1"}, segment_frames=6)

    def peak(clip: Clip) -> int:
        tracemalloc.start()
        try:
            transform_video(
                clip.path,
                tmp_path / f"{clip.path.stem}_x2.mkv",
                x2,
                2.0,
                {"codec": "ffv1"},
                segment_frames=6,
                batch_frames=2,
            )
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole_output = 60 * 192 * 256 * 3
    # one segment at a time: with the default pool, whether the short video's two segments
    # happened to overlap (a busy machine's scheduling) moved its peak by a segment's worth
    with dask.config.set(num_workers=1):
        short_peak, long_peak = peak(short), peak(long)
    assert long_peak < 1.5 * short_peak
    assert long_peak < whole_output / 3


def test_processes_run_the_same_job_as_threads(clips: dict[str, Clip], tmp_path: Path) -> None:
    clip = clips["mkv"]
    options = {"segment_frames": 8}
    transform_video(clip.path, tmp_path / "t.mp4", x2, 2.0, executor="threads", **options)
    transform_video(
        clip.path,
        tmp_path / "p.mp4",
        x2,
        2.0,
        executor={"type": "processes", "workers": 2},
        **options,
    )
    assert packets(tmp_path / "p.mp4", "video") == packets(tmp_path / "t.mp4", "video")
    with av.open(str(tmp_path / "p.mp4")) as container:
        assert container.streams.video[0].frames == 20
