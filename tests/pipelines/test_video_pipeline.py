"""Videos in pipelines: builtin.read, per-frame stages, builtin.write to videos and frame images,
image sequences, worker processes, a killed run resumed, and bad inputs through ``pipelines run``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import stage_plugins
from video_clips import Clip, make_clip, packets, video_times

from pipelines import api
from pipelines.cli import EXIT_INVALID, EXIT_RUN_ERROR, main
from pipelines.io.images import read_image, write_image
from pipelines.io.video.decode import read_frames
from pipelines.io.video.job import job_folder
from pipelines.io.video.lazy import VideoItem
from pipelines.io.video.probe import probe_video
from pipelines.testing import run_text, stage_registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "ffv1": make_clip(root / "ffv1.mkv", codec="ffv1", pix_fmt="bgr0", audio="pcm_s16le"),
        "mkv": make_clip(root / "h264.mkv", subtitles=True, rotation=90),
        "alpha": make_clip(root / "alpha.mkv", codec="ffv1", pix_fmt="bgra", audio=None),
    }


def zoomed(frames: np.ndarray, radius: int) -> np.ndarray:
    """``test.zoom`` applied to every frame on its own: what the runner must produce."""
    params = stage_plugins.ZoomParams(radius=radius)
    return np.stack([stage_plugins.box_zoom(f, params) for f in frames])


def test_a_video_is_one_item_chunked_by_segments_of_whole_frames(clips: dict[str, Clip]) -> None:
    spec = stage_registry().get("builtin.read")
    items = spec.fn(spec.params(path=str(clips["ffv1"].path), segment_frames=8))
    assert len(items) == 1 and isinstance(items[0], VideoItem)
    data = items[0].data
    assert data.shape == (20, 48, 64, 3) and data.dtype == np.uint8
    assert sum(data.chunks[0]) == 20 and len(data.chunks[0]) > 1
    assert data.chunks[1:] == ((48,), (64,), (3,))
    np.testing.assert_array_equal(data.compute(), read_frames(clips["ffv1"].path))


def test_per_frame_stages_apply_to_videos_and_lossless_output_equals_them(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ffv1"]
    said = io.StringIO()
    summary = run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{clip.path}", segment_frames: 6}}}}
          - {{id: zoom, uses: test.zoom, with: {{radius: 1}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/{{name}}_x2.mkv", video_codec: ffv1}}}}
        """,
        stage_plugins,
        progress=said,
    )
    out = tmp_path / "ffv1_x2.mkv"
    assert summary.written == (str(out),)
    np.testing.assert_array_equal(read_frames(out), zoomed(read_frames(clip.path), 1))
    assert video_times(out) == video_times(clip.path)
    assert packets(out, "audio") == packets(clip.path, "audio")
    assert f"{out}: " in said.getvalue() and "frames to do" in said.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffv1_x2.mkv"]


def test_builtin_resize_and_denoise_run_per_frame_into_an_mp4(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["mkv"]
    run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{clip.path}"}}}}
          - {{id: clean, uses: builtin.denoise, with: {{method: median, size: 3}}}}
          - {{id: big, uses: builtin.resize, with: {{scale: 1.5}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/big.mp4", crf: 20, preset: fast}}}}
        """
    )
    info = probe_video(tmp_path / "big.mp4")
    assert (info.width, info.height, info.rotation) == (96, 72, 90)
    assert video_times(tmp_path / "big.mp4") == pytest.approx(video_times(clip.path), abs=1e-6)


def test_frames_of_a_video_written_as_images_are_upright(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["mkv"]  # rotated 90 degrees for display
    summary = run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{clip.path}", segment_frames: 7}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/frames/{{name}}_{{frame:03d}}.png"}}}}
        """
    )
    assert len(summary.written) == 20
    frames = read_frames(clip.path)
    for n in (0, 7, 19):
        image = read_image(tmp_path / "frames" / f"h264_{n:03d}.png")
        np.testing.assert_array_equal(image, np.rot90(frames[n], 1))


def test_a_video_written_as_gif_is_upright_timed_in_hundredths_and_loses_its_sound(
    clips: dict[str, Clip], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = clips["mkv"]  # H.264, rotated 90 degrees for display, with sound and subtitles
    run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{clip.path}", segment_frames: 7}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/clip.gif"}}}}
        """
    )
    assert "GIF holds no sound, subtitles or data; they are left out" in caplog.text
    upright = np.rot90(read_frames(clip.path), 1, axes=(1, 2)).astype(float)
    written = read_frames(tmp_path / "clip.gif")
    assert written.shape[:3] == upright.shape[:3] == (20, 64, 48)
    error = written[..., :3].astype(float) - upright
    assert 10 * np.log10(255**2 / np.mean(error**2)) > 35
    start = video_times(clip.path)[0]
    expected = [round((t - start) * 100) / 100 for t in video_times(clip.path)]
    assert video_times(tmp_path / "clip.gif") == pytest.approx(expected, abs=1e-9)


def test_frames_written_as_webp_are_lossless_unless_given_a_quality(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    clip = clips["ffv1"]
    for quality in ("null", "30"):
        run_text(
            f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{clip.path}"}}}}
              - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/q{quality}/{{frame:03d}}.webp", quality: {quality}}}}}
            """
        )
    frame = read_frames(clip.path)[3]
    np.testing.assert_array_equal(read_image(tmp_path / "qnull" / "003.webp"), frame)
    lossy = read_image(tmp_path / "q30" / "003.webp")
    assert lossy.shape == frame.shape and not np.array_equal(lossy, frame)


def test_an_image_sequence_reads_as_a_video(tmp_path: Path) -> None:
    frames = make_clip(tmp_path / "unused.mkv", codec="ffv1", pix_fmt="bgr0", count=9).frames
    for n, frame in enumerate(frames):
        write_image(tmp_path / "seq" / f"f{n + 1}.png", frame)  # f10 sorts after f9
    run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/seq", fps: 12.5, segment_frames: 4}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/seq.mkv", video_codec: ffv1}}}}
        """
    )
    np.testing.assert_array_equal(read_frames(tmp_path / "seq.mkv"), frames)
    assert video_times(tmp_path / "seq.mkv") == pytest.approx(
        [n / 12.5 for n in range(9)], abs=1e-3
    )


def test_the_runner_maps_four_d_arrays_frame_by_frame() -> None:
    spec = stage_registry(stage_plugins).get("test.zoom")
    frames = np.random.default_rng(0).integers(0, 255, (7, 10, 12, 3), dtype=np.uint8)
    lazy = api.map_stage(da.from_array(frames, chunks=(3, 5, 6, 3)), spec, {"radius": 1})
    assert lazy.chunks == ((3, 3, 1), (20,), (24,), (3,))  # whole frames, scale on H and W only
    expected = zoomed(frames, 1)
    np.testing.assert_array_equal(lazy.compute(), expected)
    np.testing.assert_array_equal(api.map_stage(frames, spec, {"radius": 1}), expected)


def test_worker_processes_write_the_same_video_as_threads(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    job = """
        executor: {executor}
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{src}", segment_frames: 6}}}}
          - {{id: zoom, uses: test.zoom, with: {{radius: 1}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{out}"}}}}
        """
    src = clips["mkv"].path
    run_text(job.format(executor="threads", src=src, out=tmp_path / "t.mp4"), stage_plugins)
    processes = "{type: processes, workers: 2}"
    run_text(job.format(executor=processes, src=src, out=tmp_path / "p.mp4"), stage_plugins)
    assert packets(tmp_path / "p.mp4", "video") == packets(tmp_path / "t.mp4", "video")
    assert packets(tmp_path / "p.mp4", "audio") == packets(src, "audio")


def test_a_worker_lost_mid_job_costs_only_its_segments(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    job = """
        executor: {{type: processes, workers: 2, threads_per_worker: 1}}
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{src}", segment_frames: 4}}}}
          - {{id: count, uses: test.slow, with: {{log: "{root}/frames.log"}}}}
          - {{id: crash, uses: test.crash_once, with: {{marker: "{root}/crashed", log: "{root}/crash.log", after: {after}}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{out}", video_codec: ffv1}}}}
        """
    src = clips["ffv1"].path
    run_text(job.format(src=src, root=tmp_path, after=10, out=tmp_path / "lost.mkv"), stage_plugins)
    assert (tmp_path / "crashed").exists()  # a worker died (os._exit) on the 11th frame
    frames = (tmp_path / "frames.log").read_text().splitlines()
    # the segments whose frames the dead worker was computing or holding (at most one per step
    # of the pipeline, with one thread) are computed again; segments already encoded are not
    # (measured: 24 or 28 frame calls)
    assert 20 < len(frames) <= 20 + 3 * 4, len(frames)
    np.testing.assert_array_equal(read_frames(tmp_path / "lost.mkv"), read_frames(src))
    assert packets(tmp_path / "lost.mkv", "audio") == packets(src, "audio")


KILLED_JOB = """\
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{src}", segment_frames: 4}}}}
  - {{id: clean, uses: builtin.denoise, with: {{method: nl_means, patch_distance: 12, patch_size: 7}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}", video_codec: ffv1}}}}
"""


def test_a_killed_pipeline_run_resumes_reusing_its_finished_segments(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mkv", codec="ffv1", pix_fmt="bgr0", count=40)
    out = tmp_path / "out.mkv"
    job = tmp_path / "job.yaml"
    job.write_text(KILLED_JOB.format(src=clip.path, out=out))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pipelines.cli", "run", str(job), "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = job_folder(out)
    try:
        deadline = time.monotonic() + 300
        while len(list(folder.glob("seg-*.json"))) < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never finished three segments"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing at the output name
    finished = len(list(folder.glob("seg-*.json")))
    assert 3 <= finished < 10

    resumed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(job)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"resuming: {finished} of 10 segments already done ({4 * finished} of 40 frames reused)"
        in resumed.stderr
    )
    assert not folder.exists()
    reference = tmp_path / "reference.mkv"
    job.write_text(KILLED_JOB.format(src=clip.path, out=reference))
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    assert packets(out, "video") == packets(reference, "video")


def _cli(
    tmp_path: Path, src: Path | str, out: Path, capsys: pytest.CaptureFixture[str], **write: object
) -> tuple[int, str]:
    extra = "".join(f", {k}: {v}" for k, v in write.items())
    job = tmp_path / "bad.yaml"
    job.write_text(
        "steps:\n"
        f'  - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}\n'
        f'  - {{id: out, uses: builtin.write, with: {{path: "{out}"{extra}}}}}\n'
    )
    code = main(["run", str(job), "--quiet"])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_inputs_fail_in_one_line_naming_the_file_with_nothing_written(
    clips: dict[str, Clip], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n" * 10)
    truncated = tmp_path / "cut.mkv"
    truncated.write_bytes(clips["ffv1"].path.read_bytes()[:40000])
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:01,000\nHi\n\n")
    cases = [
        (not_video, {}, r"notes\.mp4: not a video"),
        (truncated, {}, r"cut\.mkv: damaged: .*keep_damaged"),
        (subs, {}, r"subs\.srt: no video stream"),
        (
            clips["ffv1"].path,
            {"video_codec": "libnothing"},
            r"out\.mp4: encoder 'libnothing' is not in this FFmpeg build",
        ),
        (clips["alpha"].path, {}, r"out\.mp4: libx264 cannot store the input's alpha channel"),
        (
            clips["ffv1"].path,
            {"video_codec": "libx264", "pix_fmt": "gbrp"},
            r"out\.mp4: libx264 cannot encode pixel format gbrp",
        ),
    ]
    import re

    for src, write, message in cases:
        code, err = _cli(tmp_path, src, out, capsys, **write)
        assert code == EXIT_RUN_ERROR, err
        assert re.search(message, _one_line(err)), err
        assert not out.exists() and not job_folder(out).exists()
    code, err = _cli(tmp_path, clips["ffv1"].path, tmp_path / "out.xyz", capsys)
    assert code == EXIT_INVALID and "does not end in an image extension" in _one_line(err)
    assert ".mp4" in err  # the video suffixes it takes are listed


def test_a_truncated_video_keeps_the_frames_before_the_damage_when_asked(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    truncated = tmp_path / "cut.mkv"
    truncated.write_bytes(clips["ffv1"].path.read_bytes()[:40000])
    run_text(
        f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{truncated}", keep_damaged: true}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/kept.mkv", video_codec: ffv1}}}}
        """
    )
    kept = read_frames(tmp_path / "kept.mkv")
    assert 0 < len(kept) < 20
    np.testing.assert_array_equal(kept, clips["ffv1"].frames[: len(kept)])


def test_video_pixels_are_capped_and_videos_do_not_go_to_zarr(
    clips: dict[str, Clip], tmp_path: Path
) -> None:
    src = clips["ffv1"].path
    with pytest.raises(api.PipelineError, match=r"ffv1\.mkv: frames are 64x48 = 3072 pixels, over"):
        run_text(
            f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{src}", max_pixels: 1000}}}}
              - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/o.mkv"}}}}
            """
        )
    with pytest.raises(
        api.PipelineError, match=r"videos are written to a video file .* not to Zarr"
    ):
        run_text(
            f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}
              - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/o.zarr"}}}}
            """
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_still_image_is_not_written_as_a_video(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(api.PipelineError, match=r"in\.png is an image, not a video"):
        run_text(
            f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in.png"}}}}
              - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.mp4"}}}}
            """
        )
    assert not (tmp_path / "out.mp4").exists()


def test_listing_stages_does_not_import_pyav() -> None:
    code = (
        "import sys\n"
        "from pipelines.hooks.manager import build_registry, get_plugin_manager\n"
        "import pipelines.api\n"
        "build_registry(get_plugin_manager())\n"
        "print('av' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
