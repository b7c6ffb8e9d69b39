"""The ``pipelines`` command: validate, run, stages, plugins; one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import random_image, save_tiny

from pipelines.cli import EXIT_INVALID, EXIT_RUN_ERROR, main
from pipelines.io.images import read_image, write_image

PIPELINE = """\
pipeline: cli-test
steps:
  - id: src
    uses: builtin.read
    with: {{path: "{root}/in.png"}}
  - id: sr
    uses: esrgan.upscale
    with: {{model: "{root}/m.safetensors", tile: 0}}
  - id: out
    uses: builtin.write
    with: {{path: "{root}/out/{{name}}_x4.png"}}
"""


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    save_tiny(tmp_path / "m.safetensors")
    write_image(tmp_path / "in.png", random_image(6, 5))
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(root=tmp_path), encoding="utf-8")
    return path


def test_validate_ok(pipeline_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(pipeline_file)]) == 0
    assert "ok, 3 steps on threads" in capsys.readouterr().out


def test_counts_in_messages_are_singular_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.runner.outputs import OutputStatus
    from pipelines.wording import counted

    one = tmp_path / "one.yaml"
    one.write_text(
        f'steps:\n  - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/x.png"}}}}\n'
    )
    assert main(["validate", str(one)]) == 0
    assert "ok, 1 step on threads" in capsys.readouterr().out
    assert [counted(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert OutputStatus("o.zarr", 1, 0, published=False).describe() == "o.zarr: 1 chunk to do"
    assert OutputStatus("o.zarr", 1, 1).describe() == (
        "o.zarr: already complete (1 of 1 chunk); nothing to do"
    )
    assert OutputStatus("o.zarr", 1, 1, published=False).describe() == (
        "o.zarr: every chunk already done (1 of 1 chunk); publishing it"
    )
    assert OutputStatus("o.zarr", 16, 3, published=False).describe() == (
        "o.zarr: resuming: 3 of 16 chunks already done, 13 to do"
    )


def test_validate_error_is_one_line_with_exit_2(
    pipeline_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline_file.write_text(pipeline_file.read_text().replace("tile: 0", "tiel: 0"))
    assert main(["validate", str(pipeline_file)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"pipelines: error: {pipeline_file}:8: step 'sr' parameter 'tiel': unknown parameter"
    )
    assert "did you mean 'tile'?" in err


def test_run_writes_and_summarises(pipeline_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(pipeline_file), "--quiet"]) == 0
    out = capsys.readouterr().out
    target = pipeline_file.parent / "out" / "in_x4.png"
    assert "cli-test: wrote 1 file in" in out and str(target) in out
    assert read_image(target).shape == (24, 20, 3)


def test_run_with_set_and_progress(pipeline_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "run",
                str(pipeline_file),
                "--set",
                "sr.outscale=2",
                "--set",
                "out.path=" + str(pipeline_file.parent / "half.png"),
            ]
        )
        == 0
    )
    assert "100% Completed" in capsys.readouterr().err
    assert read_image(pipeline_file.parent / "half.png").shape == (12, 10, 3)


def test_run_error_is_one_line_with_exit_1(
    pipeline_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(pipeline_file), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(pipeline_file), "--quiet"]) == EXIT_RUN_ERROR  # the output now exists
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output exists" in err and "step 'out' (builtin.write)" in err


def test_debug_shows_the_traceback(pipeline_file: Path) -> None:
    (pipeline_file.parent / "m.safetensors").write_bytes(b"not a model")
    with pytest.raises(Exception, match="truncated or corrupt"):
        main(["run", str(pipeline_file), "--quiet", "--debug"])


def test_missing_file_is_a_validation_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == EXIT_INVALID
    assert "nope.yaml: no such pipeline file" in capsys.readouterr().err


def test_stages_json_lists_every_stage_with_its_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--json"]) == 0
    stages = {s["id"]: s for s in json.loads(capsys.readouterr().out)}
    assert {
        "builtin.read",
        "builtin.write",
        "builtin.denoise",
        "builtin.resize",
        "esrgan.upscale",
        "esrgan.interpolate",
    } <= set(stages)
    upscale = stages["esrgan.upscale"]
    assert upscale["plugin"] == "esrgan" and upscale["consumes"] == "images"
    assert upscale["params"]["properties"]["tile"]["description"]
    assert main(["stages"]) == 0
    assert "esrgan.upscale  [esrgan]  images -> images" in capsys.readouterr().out


def test_plugins_lists_names_versions_and_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["esrgan"]["hooks"] == ["register_stages"] and plugins["esrgan"]["version"]
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.startswith("builtin  esrgan-pipelines")


def test_console_script_in_a_subprocess(pipeline_file: Path) -> None:
    broken = pipeline_file.parent / "broken.yaml"
    broken.write_text("steps:\n  - id: a\n    uses: builtin.raed\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_INVALID
    assert done.stderr == (
        f"pipelines: error: {broken}:3: step 'a': unknown stage 'builtin.raed'; "
        "did you mean 'builtin.read'?\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--quiet", str(pipeline_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert np.asarray(read_image(pipeline_file.parent / "out" / "in_x4.png")).shape == (24, 20, 3)


def test_runs_default_openmp_to_passive_waits_unless_set() -> None:
    """Set before any plugin loads torch, and inherited by the worker processes a run starts."""
    import os
    import subprocess
    import sys

    code = "import os, pipelines.cli; pipelines.cli.main(['stages']); print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE"


def test_write_quality_sets_the_jpeg_encoder_and_is_validated(
    pipeline_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pipeline_file.parent
    write_image(root / "big.png", random_image(24, 24))
    sizes = {}
    for quality in ("null", "20"):
        target = root / f"q-{quality}.jpg"
        overrides = [f"src.path={root / 'big.png'}", f"out.path={target}"]
        overrides += [f"out.quality={quality}", "out.metadata=false"]  # pixels alone
        assert (
            main(
                ["run", str(pipeline_file), "--quiet", *sum((["--set", o] for o in overrides), [])]
            )
            == 0
        )
        sizes[quality] = target.stat().st_size
    assert sizes["20"] < 0.6 * sizes["null"]
    capsys.readouterr()
    assert main(["validate", str(pipeline_file), "--set", "out.quality=101"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "step 'out' parameter 'quality'" in err and "100" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "pipelines run: error: the following arguments are required: FILE"),
        (["validate", "p.yaml", "--bogus"], "pipelines: error: unrecognized arguments: --bogus"),
        (["runn"], "pipelines: error: argument command: invalid choice: 'runn'"),
    ],
)
def test_argparse_errors_are_one_line_with_where_help_is(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(args)
    err = capsys.readouterr().err
    assert ended.value.code == EXIT_INVALID and err.startswith(message) and err.count("\n") == 1
    assert "usage:" not in err and "--help)" in err
