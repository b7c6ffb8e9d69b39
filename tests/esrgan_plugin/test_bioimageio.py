"""bioimage.io packages: bioimageio.core's own test_model passes, and bioimage.io's prediction
equals what `esrgan upscale` writes.

Two packages are exported once per module through the CLI (each export itself validates and
runs test_model before writing): a tiny RRDBNet x2 (pixel-unshuffling: input sizes step by 2)
as an RGB package in 0..255, and a tiny SRVGGNetCompact x4 as a grey package (`--channels 1`)
in 0..65535. The summary of each export's own test_model run (on the zip that is then copied to
the output) is recorded and checked, rather than running test_model a second time.

The comparison runs `esrgan upscale --precision fp32`, the precision of the package's weights
(the default, auto, may choose bf16 on this CPU). Tolerance: `esrgan upscale`'s output is rounded to the image's
integer levels, bioimage.io's is float, so they may differ by half a level; the engines
`esrgan upscale` picks on a CPU (oneDNN, PyTorch) differ from the package's PyTorch/ONNX
float32 computation by far less than 0.05 level. Allowed: 0.5 + 0.05 levels. bioimageio.core
pads a whole-image prediction by the halo (symmetric), so that comparison is made beyond the
halo from the border; a prediction without that padding is compared everywhere.
"""

from __future__ import annotations

import ast
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import tiny_rrdbnet

from esrgan_plugin.arch.compact import CompactConfig, SRVGGNetCompact
from esrgan_plugin.cli import main
from esrgan_plugin.export.bioimageio import BioimageioOptions, export_bioimageio
from esrgan_plugin.export.onnx import ExportError
from esrgan_plugin.models.loading import load_model, save_model
from esrgan_plugin.tiles.halo import model_halo
from pipelines.api import read_image, write_image

core = pytest.importorskip("bioimageio.core")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

ROUNDING = 0.5
ENGINE_SLACK = 0.05


@dataclass(frozen=True)
class Package:
    model: Path
    zip: Path
    channels: int
    peak: float
    scale: int
    multiple: int
    summaries: list[Any] = field(default_factory=list)  # test_model's, from the export


def _tiny_compact() -> SRVGGNetCompact:
    net = SRVGGNetCompact(CompactConfig(num_features=8, num_convs=2, upscale=4))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Package]:
    folder = tmp_path_factory.mktemp("bioimageio")
    torch.manual_seed(3)
    save_model(folder / "rrdb.safetensors", tiny_rrdbnet(2))
    save_model(folder / "compact.safetensors", _tiny_compact())
    made = {
        "rrdb": Package(folder / "rrdb.safetensors", folder / "rrdb.zip", 3, 255.0, 2, 2),
        "compact": Package(
            folder / "compact.safetensors", folder / "compact.zip", 1, 65535.0, 4, 1
        ),
    }
    extra = {"rrdb": [], "compact": ["--channels", "1", "--value-range", "0..65535"]}
    run_test_model = core.test_model
    for name, package in made.items():
        args = ["export", str(package.model), "-o", str(package.zip), "--size", "24"]
        args += ["--licence", "MIT", "--author", "Test Author", *extra[name]]

        def recorded(*a: Any, _into: list[Any] = package.summaries, **k: Any) -> Any:
            _into.append(summary := run_test_model(*a, **k))
            return summary

        with pytest.MonkeyPatch.context() as patch:  # wraps the real one; the export still runs it
            patch.setattr(core, "test_model", recorded)
            assert main(args) == 0
    return made


@pytest.mark.parametrize("name", ["rrdb", "compact"])
def test_bioimageio_core_test_model_passes(packages: dict[str, Package], name: str) -> None:
    """The export ran bioimageio.core's test_model once, on the CPU, and every check passed."""
    (summary,) = packages[name].summaries
    assert summary.status == "passed", summary.format()
    reproduced = {d.name for d in summary.details if d.name.startswith("Reproduce test outputs")}
    assert reproduced == {
        f"Reproduce test outputs from test inputs ({w})"
        for w in ("pytorch_state_dict", "torchscript", "onnx")
    }


@pytest.mark.parametrize("name", ["rrdb", "compact"])
def test_description_declares_sizes_halo_range_and_documentation(
    packages: dict[str, Package], name: str
) -> None:
    from bioimageio.spec import load_model_description
    from bioimageio.spec.model import v0_5

    package = packages[name]
    descr = load_model_description(package.zip)
    assert isinstance(descr, v0_5.ModelDescr)
    (inp,), (out,) = descr.inputs, descr.outputs
    assert [str(a.id) for a in inp.axes] == ["batch", "channel", "y", "x"]
    assert [str(a.id) for a in out.axes] == ["batch", "channel", "y", "x"]
    assert len(inp.axes[1].channel_names) == package.channels
    halo = model_halo(load_model(package.model).module).halo
    for axis in (2, 3):
        size = inp.axes[axis].size
        assert isinstance(size, v0_5.ParameterizedSize)
        assert size.step == package.multiple and size.min % package.multiple == 0
        assert size.min > 2 * halo  # output left after cropping the halo
        out_axis = out.axes[axis]
        assert isinstance(out_axis.size, v0_5.SizeReference)
        assert (str(out_axis.size.tensor_id), str(out_axis.size.axis_id)) == (
            "input",
            "yx"[axis - 2],
        )
        assert out_axis.size.get_size(out_axis, inp.axes[axis], n=1) == package.scale * (
            size.min + size.step
        )
        assert out_axis.halo == halo * package.scale
    assert inp.data.range == (0.0, package.peak) and out.data.range == (0.0, package.peak)
    assert [p.id for p in inp.preprocessing] == [
        "ensure_dtype",
        "scale_linear",
        "clip",
        "ensure_dtype",
    ]
    assert [p.id for p in out.postprocessing] == ["clip", "scale_linear", "ensure_dtype"]
    assert {"pytorch_state_dict", "torchscript", "onnx"} <= {w for w, e in descr.weights if e}
    assert str(descr.license) == "MIT" and [a.name for a in descr.authors] == ["Test Author"]
    assert any("ESRGAN" in c.text for c in descr.cite) or any(
        "Real-ESRGAN" in c.text for c in descr.cite
    )
    with zipfile.ZipFile(package.zip) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.md").decode()
    assert {"rdf.yaml", "README.md", "cover.png", "architecture.py", "weights.onnx"} <= names
    assert "invent" in readme and "never for measurement" in readme and "## Validation" in readme
    if package.channels == 1:
        assert "luma" in readme and "--channels 1" in readme


def _test_image(package: Package, height: int, width: int) -> np.ndarray:
    from skimage import data

    rgb = data.astronaut()[100 : 100 + height, 200 : 200 + width]
    if package.channels == 3:
        return np.ascontiguousarray(rgb)
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (grey * 257).round().astype(np.uint16)  # a 16-bit grey image


def _as_tensor(image: np.ndarray) -> np.ndarray:
    pixels = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)


@pytest.mark.parametrize("name", ["rrdb", "compact"])
def test_bioimageio_prediction_equals_esrgan_upscale(
    packages: dict[str, Package], name: str, tmp_path: Path
) -> None:
    from bioimageio.core import create_prediction_pipeline, load_description, predict
    from bioimageio.core.digest_spec import create_sample_for_model

    package = packages[name]
    image = _test_image(package, 40, 46)  # a valid size for both (step 2 and step 1)
    write_image(tmp_path / "in.png", image)
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                 "--model", str(package.model), "--precision", "fp32"]) == 0  # fmt: skip
    expected = _as_tensor(read_image(tmp_path / "out.png"))
    descr = load_description(package.zip)
    x = _as_tensor(image)
    allowed = ROUNDING + ENGINE_SLACK

    with create_prediction_pipeline(descr, devices=["cpu"]) as pipeline:
        sample = create_sample_for_model(descr, inputs={"input": x}, sample_id="raw")
        raw = pipeline.predict_sample_without_blocking(
            sample, skip_input_padding=True, skip_output_cropping=True
        )
    raw_out = raw.members["output"].data.to_numpy()
    assert raw_out.shape == expected.shape
    assert np.abs(raw_out - expected).max() <= allowed  # everywhere, borders included

    padded = predict(model=descr, inputs={"input": x}).members["output"].data.to_numpy()
    border = model_halo(load_model(package.model).module).halo * package.scale
    inner = (..., slice(border, -border), slice(border, -border))
    assert padded.shape == expected.shape
    assert np.abs(padded[inner] - expected[inner]).max() <= allowed


def test_cli_refuses_options_of_the_other_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (
            ["-o", str(tmp_path / "m.zip"), "--dynamic"],
            "--dynamic does not apply to --format bioimageio",
        ),
        (
            ["-o", str(tmp_path / "m.zip"), "--no-check"],
            "--no-check does not apply to --format bioimageio",
        ),
        (
            ["-o", str(tmp_path / "m.onnx"), "--channels", "1"],
            "--channels does not apply to --format onnx",
        ),
        (["-o", str(tmp_path / "m.zip"), "--size", "24x32"], "test tensors are square"),
    ]
    for args, message in cases:
        assert main(["export", "default-psnr", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_package_settings_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "user.safetensors"
    save_model(model, tiny_rrdbnet(4))
    out = tmp_path / "m.zip"
    cases = [
        ([str(model), "-o", str(out)], "user: the model's licence is not known; pass --licence"),
        ([str(model), "-o", str(out), "--licence", "Foo"], "licence 'Foo': not an SPDX licence"),
        (["default-psnr", "-o", str(out), "--channels", "2"], "--channels 2: this model takes 3"),
        (
            ["default-psnr", "-o", str(tmp_path / "m.onnx"), "--format", "bioimageio"],
            "a bioimage.io package is a .zip file",
        ),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    out.write_bytes(b"old")
    assert main(["export", "default-psnr", "-o", str(out)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip", "user.safetensors"]


def test_a_package_that_fails_test_model_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test outputs that the weights do not reproduce: bioimageio.core's test_model fails, the
    error is one line naming it, and nothing is left beside the output."""
    import esrgan_plugin.export.package_files as files

    right = files.reference_output
    monkeypatch.setattr(files, "reference_output", lambda m, i: np.clip(right(m, i) + 0.1, 0, 1))
    model = load_model(_compact_file(tmp_path))
    out = tmp_path / "out" / "bad.zip"
    options = BioimageioOptions(test_size=24, licence="MIT")
    with pytest.raises(
        ExportError, match=r"test_model failed: weights\.\w+: Output 'output'"
    ) as info:
        export_bioimageio(model, out, options)
    assert "\n" not in str(info.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def _compact_file(folder: Path) -> Path:
    path = folder / "tiny.safetensors"
    save_model(path, _tiny_compact())
    return path


def test_architecture_source_is_one_self_contained_file_or_refused() -> None:
    from esrgan_plugin.arch.registry import architecture_named
    from esrgan_plugin.arch.rrdbnet import RRDBNetConfig
    from esrgan_plugin.export.grey import ReplicatedChannel
    from esrgan_plugin.export.package_source import SourceUnavailable, architecture_source

    arch = architecture_named("RRDBNet")
    source = architecture_source(
        arch.module_class, arch.config_class, RRDBNetConfig(), ReplicatedChannel
    )
    assert source.modules == (
        "esrgan_plugin.arch.strips",
        "esrgan_plugin.arch.rrdbnet.network",
        "esrgan_plugin.export.grey",
    )
    imported = {
        alias.name if isinstance(node, ast.Import) else str(node.module)
        for node in ast.walk(ast.parse(source.text))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert {name.split(".")[0] for name in imported} == {
        "__future__", "collections", "dataclasses", "math", "torch", "typing"
    }  # fmt: skip
    assert source.text.count("from __future__ import annotations") == 1
    assert source.kwargs == RRDBNetConfig().to_dict()

    class Foreign(torch.nn.Module):  # this test module imports ast, numpy, pytest...
        pass

    with pytest.raises(
        SourceUnavailable, match=r"test_bioimageio imports \w+, which the package cannot carry"
    ):
        architecture_source(Foreign, RRDBNetConfig, RRDBNetConfig())


def test_authors_and_licence_come_from_a_model_card_or_the_options(tmp_path: Path) -> None:
    import json

    from esrgan_plugin.export.package_docs import ESRGAN, UNKNOWN_TRAINING_DATA, package_facts

    save_model(tmp_path / "mine.safetensors", tiny_rrdbnet(4))
    card = {"author": ["A. Person", "B. Person"], "license": "CC-BY-4.0", "description": "cells"}
    (tmp_path / "mine.json").write_text(json.dumps(card))
    model = load_model(tmp_path / "mine.safetensors")
    facts = package_facts(model, "mine", None, 1)
    assert facts.authors == ("A. Person", "B. Person") and facts.licence == "CC-BY-4.0"
    assert facts.purpose == "cells" and facts.training_data == UNKNOWN_TRAINING_DATA
    assert facts.citations == (ESRGAN,) and facts.name == "RRDBNet x4 mine (grey)"
    given = package_facts(model, "mine", None, 3, authors=("C. Person",), licence="MIT")
    assert given.authors == ("C. Person",) and given.licence == "MIT"
