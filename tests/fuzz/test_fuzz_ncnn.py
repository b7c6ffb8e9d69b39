"""Fuzzing ncnn model files: ``.param`` text with tokens, lines and counts changed, and ``.bin``
files that are truncated, padded or given another storage tag, loaded as a model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from helpers import tiny_rrdbnet
from hypothesis import given
from hypothesis import strategies as st
from ncnn_files import write_compact, write_rrdbnet
from properties import result_or_error

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.loading import LoadedModel, load_model


def _seed(kind: str, fp16: bool) -> tuple[str, bytes]:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.param"
        if kind == "rrdbnet":
            write_rrdbnet(tiny_rrdbnet(scale=4, nf=4, nb=1, gc=2), path, fp16=fp16)
        else:
            write_compact(SRVGGNetCompact(CompactConfig(num_features=4, num_convs=2)), path, fp16)
        return path.read_text(), path.with_suffix(".bin").read_bytes()


SEEDS = {(k, fp16): _seed(k, fp16) for k in ("rrdbnet", "compact") for fp16 in (True, False)}

TOKENS = st.one_of(
    st.integers(-(2**63), 2**63),
    st.sampled_from(("nan", "inf", "-inf", "1e308", "1e-400", "0x10", "", "=", ",", "-23300=")),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789=-,.e abcXYZ", max_size=12),
)


@st.composite
def ncnn_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed model's ``.param`` and ``.bin`` with one to four mutations."""
    text, data = SEEDS[(draw(st.sampled_from(("rrdbnet", "compact"))), draw(st.booleans()))]
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(("token", "param", "drop", "dup", "swap", "bin-cut", "bin-pad", "tag"))
        )
        n = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if kind == "token" and lines:
            fields = lines[n].split()
            if fields:
                fields[draw(st.integers(0, len(fields) - 1))] = str(draw(TOKENS))
                lines[n] = " ".join(fields)
        elif kind == "param" and lines:
            key = draw(st.sampled_from((0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 14, 19, -23310, -23301)))
            lines[n] += f" {key}={draw(TOKENS)}"
        elif kind == "drop" and lines:
            del lines[n]
        elif kind == "dup" and lines:
            lines.insert(n, lines[n])
        elif kind == "swap" and len(lines) > 1:
            m = draw(st.integers(0, len(lines) - 1))
            lines[n], lines[m] = lines[m], lines[n]
        elif kind == "bin-cut" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "bin-pad":
            data = data + draw(st.binary(min_size=1, max_size=64))
        elif kind == "tag" and len(data) >= 4:
            at = draw(st.integers(0, len(data) - 4)) // 4 * 4
            data = data[:at] + draw(st.binary(min_size=4, max_size=4)) + data[at + 4 :]
    return "\n".join(lines) + "\n", data


@given(ncnn_files(), st.sampled_from((".param", ".bin")))
def test_mutated_ncnn_files_load_or_fail_cleanly(files: tuple[str, bytes], open_as: str) -> None:
    """Any ``.param``/``.bin`` pair: a model that runs at its scale, or a one-line CheckpointError."""
    text, data = files
    with tempfile.TemporaryDirectory() as tmp:
        param = Path(tmp) / "model.param"
        param.write_text(text)
        param.with_suffix(".bin").write_bytes(data)
        outcome = result_or_error(lambda: load_model(param.with_suffix(open_as)), CheckpointError)
        if isinstance(outcome, LoadedModel):
            x = torch.rand(1, outcome.in_channels, 8, 8)
            with torch.no_grad():
                y = outcome.module(x)
            assert tuple(y.shape) == (1, outcome.out_channels, 8 * outcome.scale, 8 * outcome.scale)
        assert param.read_text() == text and param.with_suffix(".bin").read_bytes() == data
