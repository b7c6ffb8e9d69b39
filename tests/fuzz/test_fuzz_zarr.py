"""Fuzzing Zarr metadata: valid v3 and v2 arrays and groups whose ``zarr.json`` / ``.zarray``
declares other shapes, dtypes, chunkings, codecs, axes and attributes, read as pipeline input."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from properties import result_or_error

from pipelines.errors import ImageIOError
from pipelines.io.zarr_source import read_zarr
from pipelines.io.zarr_store import inspect_output


def _make(root: Path, fmt: int, group: bool) -> Path:
    import zarr

    data = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = root / "in.zarr"
    if group:
        g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
        g.create_array("a", shape=data.shape, chunks=(2, 2, 3), dtype="uint8")[...] = data
        return path / "a"
    zarr.create_array(
        str(path), shape=data.shape, chunks=(2, 2, 3), dtype="uint8", zarr_format=fmt
    )[...] = data
    return path


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.integers(-3, 2**40), max_size=5),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)
shapes = st.lists(
    st.one_of(st.integers(0, 9), st.integers(0, 2**62), st.just(-1)), min_size=0, max_size=6
)
DTYPES = (
    "uint8",
    "uint16",
    "float32",
    "float64",
    "int32",
    "bool",
    "complex64",
    "float16",
    "|S4",
    "<u2",
    "x",
)


@st.composite
def mutations(draw: st.DrawFn, fmt: int) -> list[tuple[str, Any]]:
    keys_v3 = (
        "shape",
        "data_type",
        "chunk_grid",
        "codecs",
        "fill_value",
        "dimension_names",
        "attributes",
        "node_type",
        "zarr_format",
        "chunk_key_encoding",
        "extra",
    )
    keys_v2 = (
        "shape",
        "dtype",
        "chunks",
        "compressor",
        "fill_value",
        "order",
        "filters",
        "zarr_format",
        "dimension_separator",
        "extra",
    )
    out = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys_v3 if fmt == 3 else keys_v2))
        if key == "shape":
            value: Any = draw(shapes | values)
        elif key in ("data_type", "dtype"):
            value = draw(st.sampled_from(DTYPES) | values)
        elif key == "chunk_grid":
            value = {"name": "regular", "configuration": {"chunk_shape": draw(shapes | values)}}
        elif key == "chunks":
            value = draw(shapes | values)
        elif key == "attributes":
            value = {"channel_names": draw(values), "bit_depth": draw(values)}
        else:
            value = draw(values)
        out.append((key, value))
    return out


@given(st.sampled_from((3, 2)), st.booleans(), st.data(), st.sampled_from((None, 8, 64)))
def test_zarr_metadata_reads_or_fails_cleanly(fmt: int, group: bool, data: Any, chunk: Any) -> None:
    """Any metadata: lazy images whose blocks compute to what they declare, or an ImageIOError."""
    changes = data.draw(mutations(fmt))
    with tempfile.TemporaryDirectory() as tmp:
        array = _make(Path(tmp), fmt, group)
        meta_file = array / ("zarr.json" if fmt == 3 else ".zarray")
        meta = json.loads(meta_file.read_text())
        for key, value in changes:
            if key == "extra":
                meta[data.draw(st.text(max_size=6))] = value
            elif key == "attributes" and fmt == 2:
                (array / ".zattrs").write_text(json.dumps(value))
            else:
                meta[key] = value
        meta_file.write_text(json.dumps(meta))
        target = str(array.parent if group else array)
        items = result_or_error(lambda: read_zarr(target, 0, chunk), ImageIOError)
        if isinstance(items, list):
            for item in items[:2]:
                assert item.data.ndim in (2, 3)
                corner = item.data[:2, :2]
                try:
                    block = np.asarray(corner)
                except Exception:  # chunk bytes that do not decode: the runner's one-line RunError
                    continue
                assert block.shape == corner.shape and block.dtype == item.data.dtype
        result_or_error(lambda: inspect_output(target), ImageIOError)
