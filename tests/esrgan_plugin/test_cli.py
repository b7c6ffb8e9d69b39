"""The ``esrgan`` command line: upscale, info, interpolate, convert, and its error contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_image, save_tiny, tiny_rrdbnet, to_layout

from esrgan_plugin.cli import build_parser, main, named_command
from esrgan_plugin.models.loading import load_model
from pipelines.io.images import read_image, write_image


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_tiny(tmp_path / "tiny.safetensors")


def run(*args: str) -> int:
    return main([str(a) for a in args])


def test_upscale_one_file(tmp_path: Path, model: Path) -> None:
    src = write_image(tmp_path / "in.png", random_image(10, 12))
    out = tmp_path / "out.png"
    assert run("upscale", src, "-o", out, "--model", model, "--tile", "0") == 0
    assert read_image(out).shape == (40, 48, 3)


def test_upscale_sixteen_bit_rgba_file(tmp_path: Path, model: Path) -> None:
    src = write_image(tmp_path / "in.png", random_image(6, 5, 4, np.uint16))
    out = tmp_path / "out.png"
    assert run("upscale", src, "-o", out, "--model", model, "--alpha-mode", "bicubic") == 0
    result = read_image(out)
    assert result.dtype == np.uint16 and result.shape == (24, 20, 4)


def test_upscale_folder_and_glob_to_folder(tmp_path: Path, model: Path) -> None:
    for name in ("a.png", "b.png", "sub/c.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / "in" / name, random_image(5, 5))
    assert (
        run(
            "upscale",
            tmp_path / "in",
            "-o",
            tmp_path / "out",
            "--model",
            model,
            "--tile",
            "16",
            "--halo",
            "4",
        )
        == 0
    )
    assert sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")
    ) == [
        "a.png",
        "b.png",
        "sub/c.png",
    ]
    assert (
        run(
            "upscale",
            str(tmp_path / "in" / "*.png"),
            "-o",
            tmp_path / "g",
            "--model",
            model,
            "--ext",
            "tif",
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["a.tif", "b.tif"]


def test_existing_output_is_kept_without_overwrite(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_image(tmp_path / "in.png", random_image(5, 5))
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert run("upscale", src, "-o", out, "--model", model) == 2
    assert out.read_bytes() == b"precious"
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err
    assert run("upscale", src, "-o", out, "--model", model, "--overwrite") == 0
    assert read_image(out).shape == (20, 20, 3)


def test_failed_run_leaves_no_output(tmp_path: Path, model: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "out.png"
    assert run("upscale", bad, "-o", out, "--model", model) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "tiny.safetensors"]


def test_batch_continues_past_a_bad_image(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "good.png", random_image(5, 5))
    (tmp_path / "in" / "broken.png").write_text("nope")
    assert run("upscale", tmp_path / "in", "-o", tmp_path / "out", "--model", model) == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]
    assert "broken.png" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.pth"], "missing.pth: model file not found"),
        (
            ["--model", "{model}", "--tile", "-5"],
            "--tile: input should be greater than or equal to 0, got -5",
        ),
        (
            ["--model", "{model}", "--precision", "fp16", "--device", "cpu"],
            "fp16 is not supported on the CPU",
        ),
        (
            ["--model", "{model}", "--outscale", "-1"],
            "--outscale: input should be greater than 0, got -1.0",
        ),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    src = write_image(tmp_path / "in.png", random_image(5, 5))
    args = [a.replace("{model}", str(model)) for a in args]
    assert run("upscale", src, "-o", tmp_path / "o.png", *args) == (
        1 if "missing" in message else 2
    )
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_info_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.pth"
    torch.save(to_layout(tiny_rrdbnet(scale=2, nf=8, nb=2, gc=4).state_dict(), "old"), path)
    assert run("info", path, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    expected = {
        "layout": "old",
        "scale": 2,
        "num_blocks": 2,
        "num_features": 8,
        "growth_channels": 4,
        "in_channels": 3,
        "out_channels": 3,
    }
    assert {k: info[k] for k in expected} == expected


def test_interpolate_endpoints_and_middle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tiny_rrdbnet(), tiny_rrdbnet()
    torch.save(to_layout(a.state_dict(), "esrgan"), tmp_path / "a.pth")
    torch.save(b.state_dict(), tmp_path / "b.pth")
    for alpha in ("0", "1", "0.3"):
        out = tmp_path / f"i{alpha}.safetensors"
        assert (
            run("interpolate", tmp_path / "a.pth", tmp_path / "b.pth", "--alpha", alpha, "-o", out)
            == 0
        )
        w = load_model(out).module.state_dict()["conv_first.weight"]
        t = float(alpha)
        torch.testing.assert_close(w, (1 - t) * a.conv_first.weight + t * b.conv_first.weight)
    assert (
        run(
            "interpolate",
            tmp_path / "a.pth",
            tmp_path / "b.pth",
            "--alpha",
            "1.5",
            "-o",
            tmp_path / "x.safetensors",
        )
        == 2
    )
    assert "alpha must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_interpolate_mismatched_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_tiny(tmp_path / "a.safetensors", nb=1)
    save_tiny(tmp_path / "b.safetensors", nb=2)
    assert (
        run(
            "interpolate",
            tmp_path / "a.safetensors",
            tmp_path / "b.safetensors",
            "--alpha",
            "0.5",
            "-o",
            tmp_path / "c.safetensors",
        )
        == 1
    )
    assert "differ" in capsys.readouterr().err


def test_convert_old_to_canonical_safetensors(tmp_path: Path) -> None:
    net = tiny_rrdbnet(scale=8)
    torch.save({"params_ema": to_layout(net.state_dict(), "old")}, tmp_path / "old.pth")
    out = tmp_path / "new.safetensors"
    assert run("convert", tmp_path / "old.pth", "-o", out) == 0
    model = load_model(out)
    assert model.layout == "basicsr" and model.scale == 8
    assert model.metadata["converted_from"].startswith("old")
    assert run("convert", tmp_path / "old.pth", "-o", tmp_path / "new.pth") == 2


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "esrgan_plugin", "--debug", "info", str(tmp_path / "none.pth")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "esrgan_plugin", "info", str(tmp_path / "none.pth")],
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 1
        and proc.stderr.strip() == f"esrgan: error: {tmp_path / 'none.pth'}: model file not found"
    )


def test_upscale_options_are_the_stage_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    """One schema: every esrgan.upscale parameter is an `esrgan upscale` option, with its bounds."""
    from esrgan_plugin.options import UpscaleParams

    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = capsys.readouterr().out
    for name in UpscaleParams.model_fields:
        assert "--" + name.replace("_", "-") in text


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--tile", "5", "--tile: must be 0 (whole image) or at least 16, got 5"),
        ("--outscale", "0", "--outscale: input should be greater than 0, got 0.0"),
        ("--halo", "-1", "--halo: input should be greater than or equal to 0, got -1"),
        ("--device", "tpu", "--device: must be one of auto, cpu, cuda, cuda:N, mps, got 'tpu'"),
        ("--alpha", "0.5", "interpolate_with and alpha go together"),
    ],
)
def test_bad_upscale_options_exit_2_in_one_line(
    tmp_path: Path,
    model: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    value: str,
    message: str,
) -> None:
    src = tmp_path / "in.png"
    write_image(src, random_image(8, 8))
    code = run(
        "upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(model), flag, value
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_unknown_output_format_is_refused_not_made_a_folder(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_image(tmp_path / "in.png", random_image(6, 6))
    assert run("upscale", src, "-o", tmp_path / "t.xyz", "--model", model) == 2
    assert "t.xyz: unknown output format '.xyz'" in capsys.readouterr().err
    assert not (tmp_path / "t.xyz").exists()


def test_output_below_a_file_names_the_file(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_image(tmp_path / "in.png", random_image(6, 6))
    (tmp_path / "afile").write_text("not a folder")
    assert run("upscale", src, "-o", tmp_path / "afile" / "x.png", "--model", model) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'afile'} is a file and not a folder" in err and "File exists" not in err


def test_interpolate_alpha_out_of_range_exits_2(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.safetensors"
    assert run("interpolate", model, model, "--alpha", "1.5", "-o", out) == 2
    assert "--alpha: alpha must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert not out.exists()


def test_refused_pickle_message_is_whole_and_unwarned(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import os
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Evil()}, protocol=4))  # a raw pickle, not a zip
    assert run("info", path) == 1
    captured = capfd.readouterr()
    assert "pwned" not in captured.out
    assert captured.err.strip().endswith(
        "only weights-only checkpoints are loaded, never arbitrary pickles"
    )
    assert len(captured.err.strip().splitlines()) == 1 and "Warning" not in captured.err


def test_batch_messages_never_share_a_line_with_the_progress_bars(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, errors and log warnings during a batch are printed above the bars."""
    import io
    import logging
    import re
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    from esrgan_plugin.inference import Upscaler

    original = Upscaler.upscale

    def warn_then_upscale(self: Upscaler, image: np.ndarray, progress: object = None) -> np.ndarray:
        logging.getLogger("esrgan_plugin.inference").warning("a warning during the batch")
        return original(self, image, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(Upscaler, "upscale", warn_then_upscale)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # let main() configure logging on this terminal
    (tmp_path / "in").mkdir()
    for name in ("a", "b", "c"):
        write_image(tmp_path / "in" / f"{name}.png", random_image(5, 5))
    (tmp_path / "in" / "b_broken.png").write_text("nope")
    assert run("upscale", tmp_path / "in", "-o", tmp_path / "out", "--model", model) == 1
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", terminal.getvalue())  # cursor moves of nested bars
    segments = re.split(r"[\r\n]", text)
    messages = [s for s in segments if "esrgan:" in s]
    assert any("a warning during the batch" in s for s in messages)
    assert any("b_broken.png" in s for s in messages)
    assert all(s.startswith("esrgan:") for s in messages), messages


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["upscale", "in.png"], "upscale"),
        (["--debug", "--models-dir", "upscale", "info", "x"], "info"),  # a folder named upscale
        (["--models-dir=m", "train", "c.yaml"], "train"),
        (["--help"], None),
        (["--models", "m", "upscale"], None),  # an abbreviation: the whole parser decides
        ([], None),
    ],
)
def test_the_named_command_is_the_first_word_after_the_global_options(
    argv: list[str], command: str | None
) -> None:
    assert named_command(argv) == command


def test_a_built_in_command_is_parsed_without_the_entry_points_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registering the entry points' commands imports their packages; `upscale` needs none."""
    import esrgan_plugin.cli as cli

    assert build_parser().parse_args(["train", "c.yaml"]).command == "train"
    monkeypatch.setattr(cli, "entry_points", _no_entry_points)
    argv = ["upscale", "in.png", "-o", "out.png"]
    assert build_parser(named_command(argv)).parse_args(argv).command == "upscale"
    with pytest.raises(AssertionError, match="entry points"):
        build_parser(named_command(["train", "c.yaml"]))


def _no_entry_points(**selection: object) -> list[object]:
    raise AssertionError("entry points read")


def test_quality_sets_the_jpeg_encoder(tmp_path: Path, model: Path) -> None:
    src = write_image(tmp_path / "in.png", random_image(24, 24))
    sizes = {}
    for quality in (None, 20):
        out = tmp_path / f"out-{quality}.jpg"
        given = [] if quality is None else ["--quality", str(quality)]
        assert run("upscale", src, "-o", out, "--model", model, "--no-metadata", *given) == 0
        sizes[quality] = out.stat().st_size
    assert sizes[20] < 0.6 * sizes[None]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["upscale", "in.png", "-o", "o.jpg", "--quality", "0"],
            "argument --quality: expected an integer from 1 to 100, got '0'",
        ),
        (
            ["upscale", "in.png", "-o", "o.jpg", "--quality", "high"],
            "argument --quality: expected an integer from 1 to 100, got 'high'",
        ),
        (
            ["upscale", "in.png", "-o", "o.png", "--precision", "fp64"],
            "argument --precision: invalid choice: 'fp64'",
        ),
        (["upscale", "in.png"], "the following arguments are required: -o/--output"),
        (["upscal", "in.png"], "argument command: invalid choice: 'upscal'"),
    ],
)
def test_argparse_errors_are_one_line_with_where_help_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as ended:
        main([str(tmp_path / a) if a.startswith(("in.", "o.")) else a for a in args])
    err = capsys.readouterr().err
    assert ended.value.code == 2 and message in err and err.count("\n") == 1
    assert "usage:" not in err and "--help)" in err
    assert list(tmp_path.iterdir()) == []
