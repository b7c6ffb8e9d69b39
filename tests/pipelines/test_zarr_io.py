"""Zarr in builtin.read / builtin.write: layouts, validation, aligned checksummed chunks, metadata, resuming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import stage_plugins
import zarr
from helpers import random_image
from stage_plugins import ZoomParams, box_zoom

from pipelines.builtin.denoise import DenoiseParams, denoise
from pipelines.builtin.files import ReadParams, WriteParams, read_images
from pipelines.errors import ImageIOError
from pipelines.io.images import write_image
from pipelines.io.zarr_store import RECORD
from pipelines.runner.summary import RunSummary
from pipelines.runner.tasks import StepError
from pipelines.testing import run_text


def make_zarr(
    path: Path, array: np.ndarray, chunks: tuple[int, ...], zarr_format: int = 3, **attrs: object
) -> Path:
    z = zarr.create_array(
        str(path), shape=array.shape, chunks=chunks, dtype=array.dtype, zarr_format=zarr_format
    )
    z[...] = array
    z.attrs.update(attrs)
    return path


def zoom_job(
    src: Path | str, out: str, log: Path, chunk: int = 16, radius: int = 3, extra: str = ""
) -> RunSummary:
    return run_text(
        f"""
    steps:
      - {{id: src, uses: builtin.read, with: {{path: "{src}", chunk: {chunk}}}}}
      - {{id: zoom, uses: test.zoom, with: {{radius: {radius}}}}}
      - {{id: log, uses: test.slow, with: {{log: "{log}"}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{out}"{extra}}}}}
    """,
        stage_plugins,
    )


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


# --------------------------------------------------------------------------- reading


def test_read_v3_v2_grey_and_datasets(tmp_path: Path) -> None:
    rgb16 = random_image(20, 18, 3, dtype=np.uint16)
    make_zarr(tmp_path / "a.zarr", rgb16, (8, 8, 3), channel_names=["red", "green", "blue"])
    make_zarr(tmp_path / "g.zarr", random_image(9, 7, None), (4, 4), zarr_format=2)
    stack = np.stack([random_image(10, 12), random_image(10, 12)[::-1]])
    make_zarr(tmp_path / "set.zarr", stack, (2, 5, 6, 3))
    items = read_images(
        ReadParams(path=[str(tmp_path / n) for n in ("a.zarr", "g.zarr", "set.zarr")])
    )
    assert [i.meta.index for i in items] == [0, 1, 2, 3]
    a, g, s0, s1 = items
    assert (
        a.meta.name == "a"
        and a.meta.channel_names == ("red", "green", "blue")
        and a.meta.dtype == "uint16"
    )
    assert a.data.chunks == ((8, 8, 4), (8, 8, 2), (3,))
    np.testing.assert_array_equal(a.data.compute(), rgb16)
    assert g.data.shape == (9, 7) and g.meta.channels == 1
    assert s1.meta.source == f"{tmp_path / 'set.zarr'}[1]" and s1.meta.channel_names == (
        "R",
        "G",
        "B",
    )
    np.testing.assert_array_equal(s1.data.compute(), stack[1])


def test_read_chunk_parameter_rechunks_zarr_and_image_files(tmp_path: Path) -> None:
    image = random_image(20, 18)
    make_zarr(tmp_path / "a.zarr", image, (20, 18, 1))
    write_image(tmp_path / "a.png", image)
    for name in ("a.zarr", "a.png"):
        item = read_images(ReadParams(path=str(tmp_path / name), chunk=8))[0]
        assert item.data.chunks == ((8, 8, 4), (8, 8, 2), (3,))
    zoom_job(tmp_path / "a.png", str(tmp_path / "out.zarr"), tmp_path / "log", chunk=8, radius=2)
    assert calls(tmp_path / "log") == 3 * 3  # a PNG tiled like a Zarr array
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "out.zarr"))[...], box_zoom(image, ZoomParams(radius=2))
    )


def test_a_group_is_a_dataset_of_its_arrays(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "grp.zarr"), mode="w")
    with pytest.raises(ImageIOError, match=r"grp.zarr: a Zarr group without arrays"):
        read_images(ReadParams(path=str(tmp_path / "grp.zarr")))
    group.create_array("b", shape=(6, 5, 3), chunks=(3, 3, 3), dtype="uint8")
    group.create_array("a", shape=(4, 4), chunks=(4, 4), dtype="uint16")
    items = read_images(ReadParams(path=str(tmp_path / "grp.zarr")))
    assert [(i.meta.name, i.meta.parent, i.data.shape) for i in items] == [
        ("a", "grp", (4, 4)),
        ("b", "grp", (6, 5, 3)),
    ]
    group.create_array("bad", shape=(4, 4, 7), chunks=(4, 4, 7), dtype="uint8")
    with pytest.raises(ImageIOError, match=r"grp.zarr/bad: Zarr array has shape \(4, 4, 7\)"):
        read_images(ReadParams(path=str(tmp_path / "grp.zarr")))


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        (
            (6, 5, 5),
            "uint8",
            r"has shape \(6, 5, 5\); expected \(H, W\), \(H, W, C\) or \(N, H, W, C\) with C = 1, 3 or 4",
        ),
        ((2, 2, 6, 5, 3), "uint8", r"has shape \(2, 2, 6, 5, 3\)"),
        ((6, 5, 3), "int32", r"has dtype int32; expected one of uint8, uint16, float32, float64"),
        ((0, 5, 3), "uint8", r"of shape \(0, 5, 3\) is empty"),
    ],
)
def test_read_refuses_arrays_that_are_not_images(
    tmp_path: Path, shape: tuple[int, ...], dtype: str, message: str
) -> None:
    zarr.create_array(
        str(tmp_path / "bad.zarr"), shape=shape, chunks=tuple(max(1, n) for n in shape), dtype=dtype
    )
    with pytest.raises(ImageIOError, match=message):
        read_images(ReadParams(path=str(tmp_path / "bad.zarr")))


def test_missing_zarr_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageIOError, match=r"nope.zarr: no Zarr array or group here"):
        read_images(ReadParams(path=str(tmp_path / "nope.zarr")))
    with pytest.raises(ImageIOError, match=r"\*.zarr: no Zarr array matches"):
        read_images(ReadParams(path=str(tmp_path / "*.zarr")))


def test_a_glob_of_zarr_arrays_is_a_batch(tmp_path: Path) -> None:
    for name in ("b", "a"):
        make_zarr(tmp_path / f"{name}.zarr", random_image(6, 5), (6, 5, 3))
    items = read_images(ReadParams(path=str(tmp_path / "*.zarr")))
    assert [(i.meta.name, i.meta.index) for i in items] == [("a", 0), ("b", 1)]


def test_write_path_may_be_zarr() -> None:
    assert WriteParams(path="out/x4.zarr").path == "out/x4.zarr"
    with pytest.raises(ValueError, match=r"does not end in an image extension .* or .zarr"):
        WriteParams(path="out/x4.txt")


# --------------------------------------------------------------------------- writing


def test_zarr_to_zarr_is_chunked_aligned_checksummed_and_described(tmp_path: Path) -> None:
    image = random_image(37, 45)
    src = make_zarr(tmp_path / "in.zarr", image, (16, 16, 3))
    out = tmp_path / "out.zarr"
    summary = zoom_job(src, str(out), tmp_path / "log", chunk=16, radius=8)
    assert summary.written == (str(out),)
    z = zarr.open_array(str(out), mode="r")
    assert z.shape == (74, 90, 3) and z.chunks == (
        32,
        32,
        3,
    )  # blocks (16, 21) x (16, 16, 13): one task per block
    np.testing.assert_array_equal(z[...], box_zoom(image, ZoomParams(radius=8)))
    assert calls(tmp_path / "log") == 2 * 3
    attrs = dict(z.attrs)
    assert (
        attrs["bit_depth"] == 8
        and attrs["channel_names"] == ["R", "G", "B"]
        and attrs["source"] == str(src)
    )
    assert attrs["scale"] == 2.0 and attrs["steps"][0]["params"] == {"radius": 8, "multiple": 1}
    assert attrs["steps"][0]["halo"] == 8 and z.metadata.dimension_names == ("y", "x", "c")
    assert "crc32c" in str(z.metadata.codecs).lower()
    assert zarr.open_array(str(out / RECORD), mode="r")[...].all()
    chunk = out / "c" / "1" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        zarr.open_array(str(out), mode="r")[32:64, 32:64]


def test_a_batch_becomes_a_dataset_or_one_array_each(tmp_path: Path) -> None:
    stack = np.stack(
        [random_image(12, 10), random_image(12, 10)[::-1], random_image(12, 10)[:, ::-1]]
    )
    src = make_zarr(tmp_path / "set.zarr", stack, (1, 8, 8, 3))
    zoom_job(src, str(tmp_path / "out.zarr"), tmp_path / "log", chunk=8, radius=1)
    z = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert (
        z.shape == (3, 24, 20, 3)
        and z.chunks == (1, 16, 16, 3)
        and z.attrs["images"] == ["set"] * 3
    )
    for n in range(3):
        np.testing.assert_array_equal(z[n], box_zoom(stack[n], ZoomParams(radius=1)))
    summary = zoom_job(
        src, str(tmp_path / "each" / "{name}_{index}.zarr"), tmp_path / "log2", chunk=8, radius=1
    )
    assert summary.written == tuple(str(tmp_path / "each" / f"set_{n}.zarr") for n in range(3))
    np.testing.assert_array_equal(zarr.open_array(summary.written[2], mode="r")[...], z[2])


def test_unequal_images_cannot_share_a_dataset_array(tmp_path: Path) -> None:
    a = make_zarr(tmp_path / "a.zarr", random_image(8, 8), (8, 8, 3))
    b = make_zarr(tmp_path / "b.zarr", random_image(8, 6), (8, 6, 3))
    with pytest.raises(
        StepError,
        match=r"out.zarr: b is uint8 \(8, 6, 3\) but a is uint8 \(8, 8, 3\); a Zarr dataset needs equal images",
    ):
        run_text(f"""
        steps:
          - {{id: src, uses: builtin.read, with: {{path: ["{a}", "{b}"]}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.zarr"}}}}
        """)
    assert not (tmp_path / "out.zarr").exists()


def test_chained_stages_each_get_their_own_halo(tmp_path: Path) -> None:
    image = random_image(40, 35)
    src = make_zarr(tmp_path / "in.zarr", image, (12, 12, 3))
    run_text(
        f"""
    steps:
      - {{id: src, uses: builtin.read, with: {{path: "{src}"}}}}
      - {{id: clean, uses: builtin.denoise, with: {{method: gaussian, sigma: 1.0}}}}
      - {{id: zoom, uses: test.zoom, with: {{radius: 5}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.zarr"}}}}
    """,
        stage_plugins,
    )
    expected = box_zoom(
        denoise(image, DenoiseParams(method="gaussian", sigma=1.0)), ZoomParams(radius=5)
    )
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...]
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert [s["halo"] for s in zarr.open_array(str(tmp_path / "out.zarr")).attrs["steps"]] == [4, 5]


# --------------------------------------------------------------------------- existing outputs


def test_a_finished_job_is_not_computed_again(tmp_path: Path) -> None:
    src = make_zarr(tmp_path / "in.zarr", random_image(32, 32), (16, 16, 3))
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    zoom_job(src, str(out), log)
    assert calls(log) == 4
    summary = zoom_job(src, str(out), log)
    assert calls(log) == 4 and summary.written == () and summary.complete == (str(out),)
    zoom_job(src, str(out), log, extra=", restart: true")
    assert calls(log) == 8


def test_a_chunk_stored_but_not_recorded_is_recomputed(tmp_path: Path) -> None:
    image = random_image(32, 48)
    src = make_zarr(tmp_path / "in.zarr", image, (16, 16, 3))
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    zoom_job(src, str(out), log)
    z = zarr.open_array(str(out), mode="r+")
    z[32:64, 0:32] = (
        7  # as if a killed run had stored this block (or part of it) without recording it
    )
    zarr.open_array(str(out / RECORD), mode="r+")[1, 0, 0] = 0
    orphan = out / "c" / "0" / "0" / "0.0123abcd.partial"
    orphan.write_bytes(b"torn")
    zoom_job(
        src, str(out), log, chunk=8
    )  # smaller blocks, realigned to the array's 32-pixel chunks
    assert calls(log) == 6 + 4  # only the unrecorded chunk: 2 x 2 blocks of 16 output pixels
    assert not orphan.exists()
    np.testing.assert_array_equal(
        zarr.open_array(str(out), mode="r")[...], box_zoom(image, ZoomParams(radius=3))
    )


def test_another_jobs_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    src = make_zarr(tmp_path / "in.zarr", random_image(16, 16), (16, 16, 3))
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    zoom_job(src, str(out), log, radius=1)
    with pytest.raises(
        StepError, match=r"out.zarr: output exists, made by another job .*; set overwrite: true"
    ):
        zoom_job(src, str(out), log, radius=2)
    zoom_job(src, str(out), log, radius=2, extra=", overwrite: true")
    assert zarr.open_array(str(out)).attrs["steps"][0]["params"]["radius"] == 2
    make_zarr(tmp_path / "foreign.zarr", np.zeros((32, 32, 3), np.uint8), (32, 32, 3))
    with pytest.raises(StepError, match="made by something other than a pipeline"):
        zoom_job(src, str(tmp_path / "foreign.zarr"), log)
    (tmp_path / "plain.zarr").mkdir()
    (tmp_path / "plain.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(
        StepError, match=r"plain.zarr: exists and is not a Zarr array; refusing to replace it"
    ):
        zoom_job(src, str(tmp_path / "plain.zarr"), log, extra=", overwrite: true")
    assert (tmp_path / "plain.zarr" / "notes.txt").read_text() == "mine"


def test_fsspec_urls_are_read_written_and_resumed(tmp_path: Path) -> None:
    import fsspec

    image = random_image(40, 36)
    base = f"memory://{tmp_path.name}"
    zarr.create_array(f"{base}/in.zarr", shape=image.shape, chunks=(16, 16, 3), dtype="uint8")[
        ...
    ] = image
    log = tmp_path / "log"
    try:
        assert zoom_job(f"{base}/in.zarr", f"{base}/out.zarr", log, radius=2).written == (
            f"{base}/out.zarr",
        )
        np.testing.assert_array_equal(
            zarr.open_array(f"{base}/out.zarr", mode="r")[...],
            box_zoom(image, ZoomParams(radius=2)),
        )
        zoom_job(f"{base}/in.zarr", f"{base}/out.zarr", log, radius=2)
        assert calls(log) == 9
    finally:
        fsspec.filesystem("memory").rm(f"/{tmp_path.name}", recursive=True)


def test_preparing_the_output_twice_in_one_run_keeps_its_chunks(tmp_path: Path) -> None:
    from pipelines.io.zarr_store import RUN_ATTR, OutputSpec, prepare_output, store_block

    spec = OutputSpec(
        str(tmp_path / "o.zarr"),
        (4, 4, 3),
        "uint8",
        (2, 2, 3),
        ("y", "x", "c"),
        {RUN_ATTR: "run-1"},
    )
    for mode in ("create", "replace"):
        prepare_output(spec, mode)  # type: ignore[arg-type]
        store_block(
            np.full((2, 2, 3), 9, np.uint8),
            spec.path,
            (slice(0, 2), slice(0, 2), slice(0, 3)),
            (slice(0, 1),) * 3,
        )
        prepare_output(spec, mode)  # type: ignore[arg-type]  # re-run after a lost worker: a no-op
        assert (
            zarr.open_array(spec.path)[0, 0, 0] == 9
            and zarr.open_array(f"{spec.path}/{RECORD}")[0, 0, 0] == 1
        )
        spec = OutputSpec(
            spec.path,
            spec.shape,
            spec.dtype,
            spec.chunks,
            spec.dimension_names,
            {RUN_ATTR: "run-2"},
        )
