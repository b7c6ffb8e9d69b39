"""Zarr and OME-Zarr outputs are visible only when complete: a run that stops part-way leaves its
chunks under the hidden work path (``.NAME.unfinished``, or in place for a URL, marked), which
other readers do not take for an image and ours refuse with how to resume; a re-run resumes
and publishes."""

from __future__ import annotations

import errno
import importlib
import itertools
import os
from pathlib import Path

import dask
import numpy as np
import pytest
import stage_plugins
import zarr
from stage_plugins import ZoomParams, box_zoom

from pipelines.io.zarr_publish import UNFINISHED_ATTR, work_path
from pipelines.io.zarr_store import RECORD
from pipelines.runner.tasks import StepError
from pipelines.testing import run_text

JOB = """
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{src}", chunk: 8}}}}
  - {{id: zoom, uses: test.zoom, with: {{radius: {radius}}}}}
  - {{id: fail, uses: test.fail_after, with: {{log: "{log}", after: {after}}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}"{write}}}}}
"""
READ = """
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{path}"}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{out}"}}}}
"""
BLOCKS = 16  # a 32 x 32 input in 8-pixel blocks


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _input(path: Path, image: np.ndarray) -> str:
    zarr.create_array(str(path), shape=image.shape, chunks=(16, 16, 3), dtype=image.dtype)[...] = (
        image
    )
    return str(path)


def _run(src: str, out: str, log: Path, after: int = 0, radius: int = 1, write: str = "") -> object:
    text = JOB.format(src=src, out=out, log=log, after=after, radius=radius, write=write)
    return run_text(text, stage_plugins)


def _store_fails_after(monkeypatch: pytest.MonkeyPatch, sink: str, after: int) -> None:
    """Make ``sink``'s chunk stores fail after ``after`` of them, as on a disk that fills up.

    One worker thread, so that no store is still running when the run has failed.
    """
    monkeypatch.setitem(dask.config.config, "num_workers", 1)
    module = importlib.import_module(sink)
    real = module.store_block
    calls = itertools.count()

    def store(*args: object) -> None:
        if next(calls) >= after:
            raise OSError(errno.ENOSPC, "planned failure: no space left")
        real(*args)

    monkeypatch.setattr(module, "store_block", store)


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _recorded(path: str) -> int:
    return int(np.asarray(zarr.open_array(f"{path}/{RECORD}", mode="r")[...]).sum())


def test_a_failed_run_publishes_nothing_and_its_rerun_resumes_and_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _image()
    src = _input(tmp_path / "in.zarr", image)
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    with monkeypatch.context() as patch:
        _store_fails_after(patch, "pipelines.io.zarr_sink", 5)
        with pytest.raises(StepError, match="planned failure"):
            _run(src, str(out), log)
    work = Path(work_path(str(out)))
    assert work == tmp_path / ".out.zarr.unfinished" and work.is_dir()
    assert not out.exists()  # no reader can take the half-written array for a finished one
    with pytest.raises(FileNotFoundError):
        zarr.open(str(out), mode="r")
    assert zarr.open_array(str(work), mode="r").attrs[UNFINISHED_ATTR] is True
    stored = _recorded(str(work))
    assert stored == 5

    # the project's own reader refuses it and says how to resume
    with pytest.raises(StepError) as refused:
        run_text(READ.format(path=out, out=tmp_path / "copy.zarr"))
    message = str(refused.value)
    assert f"{out}: unfinished" in message and str(work) in message
    assert "run the same pipeline again to resume it" in message and "\n" not in message

    before = _calls(log)
    summary = _run(src, str(out), log)
    assert summary.written == (str(out),)  # type: ignore[attr-defined]
    assert _calls(log) - before == BLOCKS - stored  # only what the failed run had not stored
    assert not work.exists()
    published = zarr.open_array(str(out), mode="r")
    assert UNFINISHED_ATTR not in published.attrs
    np.testing.assert_array_equal(published[...], box_zoom(image, ZoomParams(radius=1)))
    assert run_text(READ.format(path=out, out=tmp_path / "copy.zarr")).written == (
        str(tmp_path / "copy.zarr"),
    )


def test_a_replacement_keeps_the_old_output_until_it_is_complete(tmp_path: Path) -> None:
    image = _image(1)
    src = _input(tmp_path / "in.zarr", image)
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    _run(src, str(out), log, radius=1)
    old = zarr.open_array(str(out), mode="r")[...]
    with pytest.raises(StepError, match="planned failure"):
        _run(src, str(out), log, after=_calls(log) + 3, radius=2, write=", overwrite: true")
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[...], old)
    assert zarr.open_array(str(out), mode="r").attrs["steps"][0]["params"]["radius"] == 1
    summary = _run(src, str(out), log, radius=2, write=", overwrite: true")
    assert summary.written == (str(out),)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        zarr.open_array(str(out), mode="r")[...], box_zoom(image, ZoomParams(radius=2))
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "log", "out.zarr"]


def test_all_chunks_stored_but_not_published_is_published_by_the_rerun(tmp_path: Path) -> None:
    """A run killed between its last chunk and the rename: the re-run computes nothing."""
    image = _image(2)
    src = _input(tmp_path / "in.zarr", image)
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    _run(src, str(out), log)
    work = work_path(str(out))
    os.rename(out, work)
    zarr.open_array(work, mode="r+").attrs[UNFINISHED_ATTR] = True
    before = _calls(log)
    summary = _run(src, str(out), log)
    assert _calls(log) == before and summary.written == (str(out),)  # type: ignore[attr-defined]
    assert not Path(work).exists()
    assert UNFINISHED_ATTR not in zarr.open_array(str(out), mode="r").attrs


def test_a_url_output_is_marked_unfinished_in_place_and_refused_until_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec

    image = _image(3)
    base = f"memory://{tmp_path.name}"
    zarr.create_array(f"{base}/in.zarr", shape=image.shape, chunks=(16, 16, 3), dtype="uint8")[
        ...
    ] = image
    out, log = f"{base}/out.zarr", tmp_path / "log"
    try:
        with monkeypatch.context() as patch:
            _store_fails_after(patch, "pipelines.io.zarr_sink", 5)
            with pytest.raises(StepError, match="planned failure"):
                _run(f"{base}/in.zarr", out, log)
        assert zarr.open_array(out, mode="r").attrs[UNFINISHED_ATTR] is True
        with pytest.raises(StepError, match=rf"{out}: unfinished: .*run the same pipeline again"):
            run_text(READ.format(path=out, out=tmp_path / "copy.zarr"))
        assert _run(f"{base}/in.zarr", out, log).written == (out,)  # type: ignore[attr-defined]
        published = zarr.open_array(out, mode="r")
        assert UNFINISHED_ATTR not in published.attrs
        np.testing.assert_array_equal(published[...], box_zoom(image, ZoomParams(radius=1)))
    finally:
        fsspec.filesystem("memory").rm(f"/{tmp_path.name}", recursive=True)


def test_a_full_disk_when_creating_the_array_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _input(tmp_path / "in.zarr", _image())
    out = tmp_path / "out.zarr"

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zarr, "create_array", no_space)
    with pytest.raises(StepError) as caught:
        _run(src, str(out), tmp_path / "log")
    message = str(caught.value)
    assert (
        f"{out}: cannot create the output array at {work_path(str(out))} (No space left on device)"
        in message
    )
    assert not out.exists()


# --------------------------------------------------------------------------- OME-Zarr


def _ome_input(path: Path) -> np.ndarray:
    """A (c, y, x) OME-Zarr 0.5 image with two levels as the ``ome-zarr`` package writes it."""
    ome_writer = pytest.importorskip("ome_zarr.writer")
    ome_format = pytest.importorskip("ome_zarr.format")
    data = np.random.default_rng(4).integers(0, 4000, (2, 32, 32), dtype=np.uint16)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    ome_writer.write_image(
        data,
        group,
        axes="cyx",
        fmt=ome_format.FormatV05(),
        scale_factors=(2,),
        storage_options={"chunks": (2, 16, 16)},
    )
    return data


def _ome_multiscales(path: Path) -> list[object]:
    """The images (nodes with multiscales) that the ``ome-zarr`` package's reader finds at ``path``."""
    ome_io = pytest.importorskip("ome_zarr.io")
    ome_reader = pytest.importorskip("ome_zarr.reader")
    location = ome_io.parse_url(str(path))
    if location is None:
        return []
    return [
        node
        for node in ome_reader.Reader(location)()
        if any(isinstance(spec, ome_reader.Multiscales) for spec in node.specs)
    ]


def test_a_half_written_ome_zarr_is_no_image_to_any_reader_until_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ngff_zarr = pytest.importorskip("ngff_zarr")
    _ome_input(tmp_path / "in.zarr")
    out, log = tmp_path / "out.zarr", tmp_path / "log"
    write = ", levels: 2"
    with monkeypatch.context() as patch:
        _store_fails_after(patch, "pipelines.io.ome_sink", 5)
        with pytest.raises(StepError, match="planned failure"):
            _run(str(tmp_path / "in.zarr"), str(out), log, write=write)
    work = Path(work_path(str(out)))
    assert not out.exists() and work.is_dir()
    assert "ome" not in zarr.open_group(str(work), mode="r").attrs  # not an image, even there
    assert _ome_multiscales(work) == [] and _ome_multiscales(out) == []
    with pytest.raises(Exception):  # noqa: B017, PT011  ngff-zarr's validation refuses it
        ngff_zarr.from_ngff_zarr(str(work), validate=True)
    with pytest.raises(StepError, match=rf"{out}: unfinished: .*run the same pipeline again"):
        run_text(READ.format(path=out, out=tmp_path / "copy.zarr"))

    summary = _run(str(tmp_path / "in.zarr"), str(out), log, write=write)
    assert summary.written == (str(out),)  # type: ignore[attr-defined]
    assert not work.exists()
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert UNFINISHED_ATTR not in attrs and "multiscales" in attrs["ome"]
    for level in ("0", "1"):
        assert UNFINISHED_ATTR not in zarr.open_array(f"{out}/{level}", mode="r").attrs
    assert len(_ome_multiscales(out)) == 1
    ngff_zarr.from_ngff_zarr(str(out), validate=True)
