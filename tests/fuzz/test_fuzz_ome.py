"""Fuzzing OME-Zarr (NGFF 0.4 and 0.5) metadata: images written by the ``ome-zarr`` package whose
``multiscales`` (axes, datasets, transformations) and ``omero`` attributes are changed anywhere
in their JSON tree, read as pipeline input."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import result_or_error

from pipelines.errors import ImageIOError
from pipelines.io.ome_source import OmeOptions, open_ome, read_ome

ome_writer = pytest.importorskip("ome_zarr.writer")
ome_format = pytest.importorskip("ome_zarr.format")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """A small 3-channel uint16 image written by ome-zarr in each NGFF version, and its attributes."""
    root = tmp_path_factory.mktemp("ome-seed")
    return {version: _seed(root / version, version) for version in ("0.4", "0.5")}


def _seed(root: Path, version: str) -> tuple[Path, dict[str, Any]]:
    import zarr

    fmt = ome_format.FormatV04() if version == "0.4" else ome_format.FormatV05()
    group = zarr.open_group(str(root / "img.zarr"), mode="w", zarr_format=fmt.zarr_format)
    data = np.arange(3 * 8 * 10, dtype=np.uint16).reshape(3, 8, 10)
    ome_writer.write_image(
        data, group, axes="cyx", fmt=fmt, scale_factors=(2,), storage_options={"chunks": (1, 4, 4)}
    )
    channels = [
        {"label": f"c{i}", "window": {"min": 0, "max": 300, "start": 0, "end": 200}}
        for i in range(3)
    ]
    attrs = dict(group.attrs)
    if version == "0.4":
        attrs["omero"] = {"channels": channels}
    else:
        attrs["ome"] = {**attrs["ome"], "omero": {"channels": channels}}
    return root / "img.zarr", attrs


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_attrs(draw: st.DrawFn, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with one to three nodes anywhere in the tree replaced, deleted or duplicated."""
    attrs = copy.deepcopy(attrs)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(attrs) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = attrs
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        kind = draw(st.sampled_from(("replace", "delete", "duplicate", "number")))
        if kind == "replace":
            parent[key] = draw(json_values)
        elif kind == "delete":
            del parent[key]
        elif kind == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif kind == "number":
            parent[key] = draw(st.sampled_from((0, -1, 1, 2, 3, 2**40, 0.5, "0", "x", [], {})))
    return attrs


@given(st.sampled_from(("0.4", "0.5")), st.data())
def test_ome_metadata_reads_or_fails_cleanly(
    seeds: dict[str, tuple[Path, dict[str, Any]]], version: str, data: Any
) -> None:
    """Any NGFF attributes: lazy images whose blocks compute as declared, or an ImageIOError."""
    source, attrs = seeds[version]
    broken = data.draw(mutated_attrs(attrs))
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        path = Path(tmp) / "img.zarr"
        shutil.copytree(source, path)
        meta_file = path / ("zarr.json" if version == "0.5" else ".zattrs")
        if version == "0.5":
            meta = json.loads(meta_file.read_text())
            meta["attributes"] = broken
            meta_file.write_text(json.dumps(meta))
        else:
            meta_file.write_text(json.dumps(broken))
        image = result_or_error(lambda: open_ome(str(path)), ImageIOError)
        if image is None or isinstance(image, BaseException):
            return
        items = result_or_error(lambda: read_ome(image, 0, OmeOptions()), ImageIOError)
        if isinstance(items, list):
            for item in items[:2]:
                corner = item.data[:2, :2]
                block = np.asarray(corner)
                assert block.shape == corner.shape and block.dtype == item.data.dtype
