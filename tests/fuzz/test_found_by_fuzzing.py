"""Regression tests: each crash the fuzzers found, as a plain test of the fixed behaviour."""

from __future__ import annotations

import json
import pickle
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_rrdbnet
from ncnn_files import write_rrdbnet

from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.loading import build_from_state_dict, load_model
from pipelines.config.loader import ValidationError, parse_config
from pipelines.config.yaml_loader import MAX_DEPTH, YamlError, parse_yaml
from pipelines.errors import ImageIOError
from pipelines.io.zarr_source import read_zarr
from pipelines.io.zarr_store import inspect_output
from training.config import load_config
from training.errors import TrainingError


@pytest.mark.parametrize("stream", [b"", pickle.TUPLE, pickle.MARK + pickle.SETITEMS, b"\x81"])
def test_malformed_pickle_stream_is_a_checkpoint_error(tmp_path: Path, stream: bytes) -> None:
    """torch's weights-only unpickler raised IndexError/KeyError on these; now one line."""
    path = tmp_path / "bad.pth"
    path.write_bytes(stream + pickle.STOP)
    with pytest.raises(CheckpointError, match="not a valid pickle stream|corrupt"):
        load_model(path)


def test_conv_weight_of_wrong_rank_is_named() -> None:
    state = tiny_rrdbnet(nf=4, nb=1, gc=2).state_dict()
    state["conv_first.weight"] = torch.zeros(4)
    with pytest.raises(CheckpointError, match=r"conv_first.weight has shape \(4,\)"):
        build_from_state_dict(state)


def test_a_small_file_cannot_make_the_loader_build_a_huge_network() -> None:
    """conv_first of 40k filters once made a 40k-feature RRDBNet (tens of GB) before the check."""
    state = tiny_rrdbnet(nf=4, nb=1, gc=2).state_dict()
    state["conv_first.weight"] = torch.zeros(40_000, 3, 1, 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="has shape"):
        build_from_state_dict(state)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (" 6=", " 9=nan 6=", "parameter 9 should be a finite number"),
        (" 5=1", " 5=1 -23310=inf,1", "malformed layer line"),
        (" 4=1", " 4=1 11=0", "weight_data_size"),
    ],
)
def test_ncnn_params_that_crashed(tmp_path: Path, old: str, new: str, match: str) -> None:
    param = write_rrdbnet(tiny_rrdbnet(nf=4, nb=1, gc=2), tmp_path / "m.param")
    param.write_text(param.read_text().replace(old, new, 1))
    with pytest.raises(CheckpointError, match=match):
        load_model(param)


BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
)


def test_alias_bomb_is_refused_quickly() -> None:
    """Walking every alias for line numbers took exponential time; now the expansion is bounded."""
    with pytest.raises(YamlError, match="alias bomb"):
        parse_yaml(BOMB + "\nname: *a9\n")
    with pytest.raises(ValidationError, match="alias bomb"):
        parse_config(BOMB + "\nsteps: [{id: a, uses: builtin.read, with: {path: *a9}}]\n")


def test_shared_aliases_are_still_fine() -> None:
    data, where = parse_yaml("base: &b {x: 1}\none: *b\ntwo: {<<: *b, y: 2}\n")
    assert data["two"] == {"x": 1, "y": 2} and where.line(("one",)) == 2


def test_deep_nesting_is_refused_with_its_line() -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(YamlError, match=f"x.yaml:2: nested more than {MAX_DEPTH}"):
        parse_yaml(f"name: a\nv: {deep}\n", "x.yaml")
    with pytest.raises(ValidationError, match="nested more than"):
        parse_config(f"steps: {'[' * 20000}")


def test_experiment_key_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        'name: x\nstage: psnr\noutput_dir: o\ndata: {train: {kind: skimage, names: [a]}}\noptim: {iterations: 1}\n"\\n": 1\n'
    )
    with pytest.raises(TrainingError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and "'\\n'" in str(info.value)


def _zarr(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    import zarr

    zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="uint8")


def _set_meta(path: Path, **fields: object) -> None:
    meta = json.loads((path / "zarr.json").read_text())
    meta.update(fields)
    (path / "zarr.json").write_text(json.dumps(meta))


def test_zarr_group_with_a_broken_member(tmp_path: Path) -> None:
    import zarr

    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(4, 4, 3), chunks=(2, 2, 3), dtype="uint8")
    _set_meta(tmp_path / "g.zarr" / "a", data_type="x")
    with pytest.raises(ImageIOError, match="cannot read the group's arrays"):
        read_zarr(str(tmp_path / "g.zarr"), 0, None)


def test_zarr_with_billions_of_declared_chunks(tmp_path: Path) -> None:
    _zarr(tmp_path / "a.zarr", (4, 4, 3), (2, 2, 3))
    _set_meta(tmp_path / "a.zarr", shape=[2**31, 2**31, 3])
    with pytest.raises(ImageIOError, match="chunks, over the limit"):
        read_zarr(str(tmp_path / "a.zarr"), 0, None)
    with pytest.raises(ImageIOError, match="chunks, over the limit"):
        inspect_output(str(tmp_path / "a.zarr"))


def test_zarr_with_a_huge_declared_chunk(tmp_path: Path) -> None:
    _zarr(tmp_path / "a.zarr", (4, 4, 3), (2, 2, 3))
    _set_meta(
        tmp_path / "a.zarr",
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [2**20, 2**20, 3]}},
    )
    with pytest.raises(ImageIOError, match="bytes each, over the limit"):
        read_zarr(str(tmp_path / "a.zarr"), 0, None)


def test_zarr_rechunk_to_too_many_blocks(tmp_path: Path) -> None:
    _zarr(tmp_path / "a.zarr", (4, 4, 3), (2, 2, 3))
    _set_meta(tmp_path / "a.zarr", shape=[2**20, 2**20, 3])
    _set_meta(
        tmp_path / "a.zarr",
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [2**13, 2**13, 3]}},
    )
    with pytest.raises(ImageIOError, match="over the limit"):
        read_zarr(str(tmp_path / "a.zarr"), 0, 8)
    assert np.asarray(read_zarr(str(tmp_path / "a.zarr"), 0, None)[0].data.shape).prod() > 0


def _ome_image(tmp_path: Path) -> Path:
    import zarr

    writer = pytest.importorskip("ome_zarr.writer")
    fmt = pytest.importorskip("ome_zarr.format").FormatV04()
    group = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=2)
    data = np.zeros((3, 8, 10), dtype=np.uint16)
    writer.write_image(data, group, axes="cyx", fmt=fmt, scale_factors=(2,))
    return tmp_path / "img.zarr"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.update(axes=7), "malformed OME-Zarr metadata"),
        (lambda m: m["datasets"][0].pop("path"), "malformed OME-Zarr metadata"),
        (lambda m: m["datasets"][0].update(coordinateTransformations=[5]), "malformed"),
        (lambda m: m["datasets"][0].update(path="nowhere"), "cannot open the OME-Zarr level"),
    ],
)
def test_broken_ome_metadata(tmp_path: Path, change: object, match: str) -> None:
    from pipelines.io.ome_source import OmeOptions, open_ome, read_ome

    path = _ome_image(tmp_path)
    attrs = json.loads((path / ".zattrs").read_text())
    change(attrs["multiscales"][0])  # type: ignore[operator]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(ImageIOError, match=match):
        image = open_ome(str(path))
        assert image is not None
        read_ome(image, 0, OmeOptions())


def test_unprintable_tensor_names_stay_on_one_line() -> None:
    """An extra tensor named '\\n' put a line break in the mismatch message."""
    state = tiny_rrdbnet(nf=4, nb=1, gc=2).state_dict()
    state["\n"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected keys '\\n'") as info:
        build_from_state_dict(state)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError) as info:
        build_from_state_dict({"\nx": torch.zeros(1)})
    assert "\n" not in str(info.value)
