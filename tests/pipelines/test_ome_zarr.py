"""OME-Zarr in and out: images written by the ``ome-zarr`` package go through read -> esrgan.upscale
-> write into an OME-Zarr pyramid that ``ome-zarr`` reads back with the right axes, shapes and
physical scale, values per channel equal to upscaling each channel in memory."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import save_tiny

from esrgan_plugin.inference import UpscaleOptions, Upscaler
from esrgan_plugin.models.loading import load_model
from pipelines.errors import PipelineError
from pipelines.io.ome_sink import downsample
from pipelines.testing import run_text

ome_writer = pytest.importorskip("ome_zarr.writer")
ome_format = pytest.importorskip("ome_zarr.format")
ome_io = pytest.importorskip("ome_zarr.io")
ome_reader = pytest.importorskip("ome_zarr.reader")

HALO = 20  # >= the tiny model's receptive radius (19 LR pixels): blocks equal the whole image
LABELS = ["DAPI", "GFP", "mCherry"]
WINDOWS = [(100.0, 4100.0), (0.0, 9000.0), (50.0, 3050.0)]


def write_ome(
    path: Path,
    data: np.ndarray,
    axes: str,
    version: str,
    chunks: tuple[int, ...],
    omero: bool = True,
) -> None:
    """An OME-Zarr image as the reference implementation writes it, with omero windows and a pixel size."""
    fmt = ome_format.FormatV04() if version == "0.4" else ome_format.FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    ome_writer.write_image(
        data,
        group,
        axes=axes,
        fmt=fmt,
        scale={"y": 0.5, "x": 0.25},  # micrometres per pixel
        axes_units={"y": "micrometer", "x": "micrometer"},
        scale_factors=(2,),
        storage_options={"chunks": chunks},
    )
    if not omero:
        return
    channels = data.shape[axes.index("c")] if "c" in axes else 0
    meta = {
        "channels": [
            {
                "label": LABELS[c],
                "color": "FFFFFF",
                "window": {"min": WINDOWS[c][0], "max": WINDOWS[c][1], "start": 0, "end": 3000},
            }
            for c in range(channels)
        ]
    }
    if version == "0.4":
        group.attrs["omero"] = meta
    else:
        ome = dict(group.attrs["ome"])
        ome["omero"] = meta
        group.attrs["ome"] = ome


def in_memory(model: Path, planes: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    """The reference: each channel (or the 3 together) normalised, upscaled whole, restored, as uint16."""
    engine = Upscaler(load_model(str(model)), UpscaleOptions(tile=0, device="cpu"))
    lo = np.array([w[0] for w in windows])
    span = np.array([w[1] - w[0] for w in windows])
    pixels = (planes.astype(np.float32) - lo[:, None, None]) / span[:, None, None]
    if planes.shape[0] == 3:
        out = np.moveaxis(engine.upscale(np.moveaxis(pixels, 0, -1).astype(np.float32)), -1, 0)
    else:
        out = np.stack([engine.upscale(p.astype(np.float32)) for p in pixels])
    values = out.astype(np.float64) * span[:, None, None] + lo[:, None, None]
    return np.clip(np.rint(values), 0, 65535).astype(np.uint16)


def read_back(path: Path) -> object:
    nodes = list(ome_reader.Reader(ome_io.parse_url(str(path)))())
    assert nodes, f"ome-zarr found no image at {path}"
    return nodes[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ome")
    save_tiny(root / "m.safetensors")
    rng = np.random.default_rng(3)
    cyx = rng.integers(100, 4000, size=(3, 40, 48), dtype=np.uint16)
    write_ome(root / "cyx.zarr", cyx, "cyx", "0.5", (3, 16, 16))
    tczyx = rng.integers(0, 3000, size=(2, 3, 4, 24, 20), dtype=np.uint16)
    write_ome(root / "tczyx.zarr", tczyx, "tczyx", "0.4", (1, 1, 1, 12, 10))
    np.save(root / "cyx.npy", cyx)
    np.save(root / "tczyx.npy", tczyx)
    return root


def job(root: Path, source: str, out: str, read: str = "", write: str = "") -> str:
    return f"""
steps:
  - {{id: src, uses: builtin.read, with: {{path: "{root}/{source}"{read}}}}}
  - {{id: sr, uses: esrgan.upscale, with: {{model: "{root}/m.safetensors", halo: {HALO}, tile: 0, device: cpu}}}}
  - {{id: out, uses: builtin.write, with: {{path: "{root}/{out}"{write}}}}}
"""


def test_three_uint16_channels_become_an_ome_zarr_pyramid(root: Path) -> None:
    summary = run_text(job(root, "cyx.zarr", "cyx_x4.zarr", write=", levels: 3"), entry_points=True)
    assert summary.written == (str(root / "cyx_x4.zarr"),)
    node = read_back(root / "cyx_x4.zarr")
    assert [tuple(d.shape) for d in node.data] == [(3, 160, 192), (3, 80, 96), (3, 40, 48)]
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "y", "x"]
    transforms = node.metadata["coordinateTransformations"]
    assert transforms[0][0]["scale"] == [1.0, 0.125, 0.0625]  # the input's 0.5 x 0.25 um over 4
    # pixel centres: output pixel 0 sits 3/8 of an input pixel before input pixel 0
    assert transforms[0][1]["translation"] == pytest.approx([0.0, -0.1875, -0.09375])
    assert transforms[1][0]["scale"] == [1.0, 0.25, 0.125]  # a 2 x 2 mean: centred between
    assert transforms[1][1]["translation"] == pytest.approx([0.0, -0.125, -0.0625])
    assert node.metadata["axes"][1].get("unit") == "micrometer"
    level0 = np.asarray(node.data[0])
    assert level0.dtype == np.uint16
    expected = in_memory(root / "m.safetensors", np.load(root / "cyx.npy"), WINDOWS)
    for c, (lo, hi) in enumerate(WINDOWS):  # within 1/255 of each channel's value range
        error = np.abs(level0[c].astype(np.int64) - expected[c].astype(np.int64)).max()
        assert error <= (hi - lo) / 255, (c, error)
    # the pyramid: each level the 2 x 2 mean of the one before, as written
    reference = level0.reshape(3, 80, 2, 96, 2).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_array_equal(np.asarray(node.data[1]), np.rint(reference).astype(np.uint16))
    attrs = dict(zarr.open_group(str(root / "cyx_x4.zarr"), mode="r").attrs)
    assert attrs["ome"]["version"] == "0.5"
    assert [c["label"] for c in attrs["ome"]["omero"]["channels"]] == LABELS
    provenance = attrs["pipelines"]
    model = provenance["steps"][0]["provenance"]["model"]
    digest = hashlib.sha256((root / "m.safetensors").read_bytes()).hexdigest()
    assert model["sha256"] == digest and model["architecture"] == "RRDBNet"
    step = provenance["steps"][0]["provenance"]
    assert (step["device"], step["halo"], step["tile"]) == ("cpu", HALO, 0)
    assert step["precision"] == step["precision_auto"]["precision"]  # auto: measured, recorded
    assert provenance["version"] and provenance["created"]


def test_the_example_pipeline_writes_a_four_level_pyramid(root: Path) -> None:
    example = (
        Path(__file__).resolve().parents[2] / "pipelines" / "examples" / "ome-zarr-upscale.yaml"
    )
    overrides = [
        f"src.path={root}/cyx.zarr",
        f"sr.model={root}/m.safetensors",
        "sr.device=cpu",
        f"out.path={root}/example_x4.ome.zarr",
        f"sr.halo={HALO}",  # the tiny model's exact halo (the example leaves it to the model)
    ]
    run_text(example.read_text(encoding="utf-8"), overrides=overrides, entry_points=True)
    node = read_back(root / "example_x4.ome.zarr")
    shapes = [tuple(d.shape) for d in node.data]
    assert shapes == [(3, 160, 192), (3, 80, 96), (3, 40, 48), (3, 20, 24)]
    expected = in_memory(root / "m.safetensors", np.load(root / "cyx.npy"), WINDOWS)
    error = np.abs(np.asarray(node.data[0]).astype(np.int64) - expected.astype(np.int64))
    assert all(error[c].max() <= (hi - lo) / 255 for c, (lo, hi) in enumerate(WINDOWS))


def test_ngff_zarr_validates_the_output(root: Path) -> None:
    validate = pytest.importorskip("ngff_zarr").validate
    pytest.importorskip("jsonschema")
    out = root / "cyx_valid.zarr"
    run_text(job(root, "cyx.zarr", "cyx_valid.zarr"), entry_points=True)
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    validate(attrs, version="0.5", model="image", strict=True)


def test_subsets_of_a_5d_image_go_channel_by_channel(root: Path) -> None:
    read = ", channels: [0, 2], t: 1, z: 1:3, intensity_range: dtype"
    run_text(job(root, "tczyx.zarr", "sub.zarr", read=read, write=", levels: 2"), entry_points=True)
    node = read_back(root / "sub.zarr")
    assert [tuple(d.shape) for d in node.data] == [(1, 2, 2, 96, 80), (1, 2, 2, 48, 40)]
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "c", "z", "y", "x"]
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [
        1.0,
        1.0,
        1.0,
        0.125,
        0.0625,
    ]
    level0 = np.asarray(node.data[0])
    source = np.load(root / "tczyx.npy")
    for k, z in enumerate((1, 2)):
        planes = source[1, [0, 2], z]
        expected = in_memory(root / "m.safetensors", planes, [(0.0, 65535.0)] * 2)
        error = np.abs(level0[0, :, k].astype(np.int64) - expected.astype(np.int64)).max()
        assert error <= 65535 / 255, (z, error)
    omero = dict(zarr.open_group(str(root / "sub.zarr"), mode="r").attrs)["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["DAPI", "mCherry"]


def test_a_finished_output_is_complete_and_a_lost_pyramid_level_resumes(root: Path) -> None:
    text = job(root, "cyx.zarr", "again.zarr", write=", levels: 3")
    run_text(text, entry_points=True)
    before = np.asarray(zarr.open_array(str(root / "again.zarr" / "2"), mode="r")[...])
    progress = io.StringIO()
    summary = run_text(text, entry_points=True, progress=progress)
    assert summary.complete == (str(root / "again.zarr"),) and summary.written == ()
    assert "already complete" in progress.getvalue()
    record = zarr.open_array(str(root / "again.zarr" / "2" / ".done"), mode="r+")
    record[...] = 0  # as if the run had been killed before the last level was stored
    zarr.open_array(str(root / "again.zarr" / "2"), mode="r+")[...] = 0
    progress = io.StringIO()
    summary = run_text(text, entry_points=True, progress=progress)
    assert summary.written == (str(root / "again.zarr"),)
    # 16-pixel input chunks grow to 20 (the halo), so 80 x 80 output chunks: 2 x 3 in level 0,
    # 1 x 2 in level 1, 1 in level 2
    assert "resuming: 8 of 9 chunks already done, 1 to do" in progress.getvalue()
    np.testing.assert_array_equal(
        np.asarray(zarr.open_array(str(root / "again.zarr" / "2"), mode="r")[...]), before
    )


def test_bad_selections_are_one_line_errors(root: Path) -> None:
    cases = {
        ", level: 7": "level 7 does not exist; the image has levels 0 to 1",
        ", channels: [5]": "channel 5 does not exist",
        ", t: 0": "has no axis 't'",
        ", intensity_range: [5, 5]": "expected low < high",
        ", intensity_range: omero, channels: [0], z: 9": "z: 9 selects nothing",
        ", z: 2:2": "z: '2:2' selects nothing",
    }
    for read, message in cases.items():
        source = "tczyx.zarr" if "z:" in read else "cyx.zarr"
        with pytest.raises(PipelineError, match=message):
            run_text(job(root, source, "bad.zarr", read=read), entry_points=True)
    with pytest.raises(PipelineError, match=r"is level 1 of the OME-Zarr image .*cyx\.zarr; read"):
        run_text(job(root, "cyx.zarr/s1", "bad.zarr"), entry_points=True)
    assert not (root / "bad.zarr").exists()


def test_downsample_mean_covers_odd_edges_and_nearest_keeps_pixels() -> None:
    block = np.arange(15, dtype=np.uint16).reshape(3, 5)
    np.testing.assert_array_equal(downsample(block, "nearest"), block[::2, ::2])
    mean = downsample(block, "mean")
    assert mean.shape == (2, 3)
    assert mean[0, 0] == round((0 + 1 + 5 + 6) / 4) and mean[1, 2] == 14  # the lone corner pixel


def test_float_channels_use_the_data_range_and_stay_float(root: Path) -> None:
    rng = np.random.default_rng(5)
    planes = (rng.random((2, 24, 20)) * np.array([[[50.0]], [[0.01]]]) - 3).astype(np.float32)
    write_ome(root / "float.zarr", planes, "cyx", "0.5", (2, 24, 20), omero=False)
    run_text(job(root, "float.zarr", "float_x4.zarr", write=", levels: 1"), entry_points=True)
    out = np.asarray(read_back(root / "float_x4.zarr").data[0])
    assert out.dtype == np.float32 and out.shape == (2, 96, 80)
    engine = Upscaler(load_model(str(root / "m.safetensors")), UpscaleOptions(tile=0, device="cpu"))
    for c in range(2):  # the window is each channel's own minimum and maximum
        lo, hi = float(planes[c].min()), float(planes[c].max())
        expected = engine.upscale((planes[c] - lo) / (hi - lo)).astype(np.float64) * (hi - lo) + lo
        assert np.abs(out[c] - expected).max() <= (hi - lo) / 255


def test_plain_zarr_output_of_ome_planes_is_in_the_input_units(root: Path) -> None:
    read = ", channels: [1, 2], intensity_range: [[0, 9000], [50, 3050]]"  # = their omero min/max
    run_text(
        job(root, "cyx.zarr", "planes.zarr", read=read, write=", format: zarr"), entry_points=True
    )
    planes = zarr.open_array(str(root / "planes.zarr"), mode="r")
    assert planes.shape == (2, 160, 192) and planes.dtype == np.uint16
    expected = in_memory(root / "m.safetensors", np.load(root / "cyx.npy")[[1, 2]], WINDOWS[1:])
    for k, (lo, hi) in enumerate(WINDOWS[1:]):
        assert (
            np.abs(planes[k].astype(np.int64) - expected[k].astype(np.int64)).max()
            <= (hi - lo) / 255
        )


def test_a_local_cluster_writes_the_same_pyramid(root: Path) -> None:
    text = job(root, "tczyx.zarr", "OUT", read=", channels: [1], t: 0", write=", levels: 2")
    cluster = "executor: {type: processes, workers: 2, threads_per_worker: 1}\n"
    run_text(text.replace("OUT", "threads.zarr"), entry_points=True)
    summary = run_text(cluster + text.replace("OUT", "cluster.zarr"), entry_points=True)
    assert summary.executor == "processes" and summary.written == (str(root / "cluster.zarr"),)
    for level in ("0", "1"):
        np.testing.assert_array_equal(
            zarr.open_array(str(root / "cluster.zarr" / level), mode="r")[...],
            zarr.open_array(str(root / "threads.zarr" / level), mode="r")[...],
        )


def test_another_job_or_a_foreign_folder_at_the_output_is_refused(root: Path) -> None:
    read = ", channels: [0], t: 0, z: 0"
    text = job(root, "tczyx.zarr", "mine.zarr", read=read, write=", levels: 1")
    run_text(text, entry_points=True)
    other = text.replace(f"halo: {HALO}", f"halo: {HALO + 2}")  # other pixels: another job
    with pytest.raises(PipelineError, match=r"mine\.zarr: output exists, made by another job"):
        run_text(other, entry_points=True)
    (root / "foreign.zarr").mkdir()
    (root / "foreign.zarr" / "notes.txt").write_text("keep me")
    with pytest.raises(PipelineError, match="exists and is not a Zarr group; refusing"):
        run_text(text.replace("mine.zarr", "foreign.zarr"), entry_points=True)
    assert (root / "foreign.zarr" / "notes.txt").read_text() == "keep me"
