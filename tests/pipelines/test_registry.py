"""Hooks, stage specs, the registry, the plugin manager and the lifecycle hooks of a run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field

from pipelines.config.schema import Pipeline, Step
from pipelines.hooks import specs as hookspecs
from pipelines.hooks.manager import (
    PluginLoadError,
    build_registry,
    get_plugin_manager,
    plugin_infos,
)
from pipelines.hooks.markers import PROJECT_NAME, hookimpl
from pipelines.io.images import read_image, write_image
from pipelines.runner.registry import (
    DuplicateStageError,
    StageParams,
    StageRegistry,
    StageSpec,
    StageSpecError,
    UnknownStageError,
)
from pipelines.runner.summary import RunSummary, StepOutput
from pipelines.runner.tasks import StepError
from pipelines.testing import plugin_manager, run_text, stage_registry

PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"


class InvertParams(StageParams):
    bias: int = Field(0, ge=0, description="added after inverting")


def invert(image: np.ndarray, params: InvertParams) -> np.ndarray:
    return (255 - image + params.bias).astype(image.dtype)


def explode(image: np.ndarray, params: InvertParams) -> np.ndarray:
    raise ValueError("kaboom")


INVERT = StageSpec("test.invert", "inverts 8-bit images", InvertParams, invert)


class Recorder:
    """A plugin adding one stage and recording every lifecycle hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [INVERT, StageSpec("test.explode", "always fails", InvertParams, explode)]

    @hookimpl
    def before_pipeline(self, pipeline: Pipeline) -> None:
        self.calls.append(("before_pipeline", pipeline.name))

    @hookimpl
    def before_step(self, step: Step, pipeline: Pipeline) -> None:
        self.calls.append(("before_step", step.id))

    @hookimpl
    def after_step(self, step: Step, pipeline: Pipeline, output: StepOutput) -> None:
        self.calls.append(("after_step", f"{step.id}:{output.images}:{len(output.written)}"))

    @hookimpl
    def on_step_error(self, step: Step, pipeline: Pipeline, error: BaseException) -> None:
        self.calls.append(("on_step_error", step.id))

    @hookimpl
    def after_pipeline(self, pipeline: Pipeline, summary: RunSummary) -> None:
        self.calls.append(("after_pipeline", str(len(summary.written))))


def test_stage_spec_checks_its_fields() -> None:
    with pytest.raises(StageSpecError, match="dotted"):
        StageSpec("Invert", "x", InvertParams, invert)
    with pytest.raises(StageSpecError, match="description"):
        StageSpec("test.x", " ", InvertParams, invert)
    with pytest.raises(StageSpecError, match="pydantic"):
        StageSpec("test.x", "x", dict, invert)  # type: ignore[arg-type]
    with pytest.raises(StageSpecError, match="consumes"):
        StageSpec("test.x", "x", InvertParams, invert, consumes="pixels")  # type: ignore[arg-type]
    spec = StageSpec(
        "test.x", "x", InvertParams, invert, halo=lambda p: p.bias + 1, scale=lambda p: None
    )
    assert spec.halo_for(InvertParams(bias=2)) == 3 and spec.scale_for(InvertParams()) is None
    with pytest.raises(AttributeError):
        spec.id = "test.y"  # type: ignore[misc]


def test_params_models_refuse_unknown_keys_and_are_frozen() -> None:
    with pytest.raises(Exception, match="Extra inputs"):
        InvertParams(bais=1)  # type: ignore[call-arg]
    assert issubclass(InvertParams, BaseModel)


def test_registry_refuses_duplicates_naming_both_plugins() -> None:
    registry = StageRegistry()
    registry.add(INVERT, "first")
    with pytest.raises(DuplicateStageError, match="'first' and plugin 'second'"):
        registry.add(INVERT, "second")
    with pytest.raises(UnknownStageError, match="did you mean 'test.invert'"):
        registry.get("test.invrt")


def test_a_plugin_that_redefines_a_builtin_stage_is_an_error() -> None:
    class Clash:
        @hookimpl
        def register_stages(self) -> list[StageSpec]:
            return [StageSpec("builtin.read", "again", InvertParams, invert)]

    with pytest.raises(DuplicateStageError, match="builtin.read"):
        stage_registry(Clash())


def test_plugin_manager_has_builtin_and_installed_plugins() -> None:
    pm = get_plugin_manager()
    assert pm.project_name == PROJECT_NAME == "pipelines"
    registry = build_registry(pm)
    assert {"builtin.read", "builtin.write", "builtin.denoise", "builtin.resize"} <= set(
        registry.ids()
    )
    assert {"esrgan.upscale", "esrgan.interpolate"} <= set(
        registry.ids()
    )  # through the entry point
    assert registry.plugin_of("esrgan.upscale") == "esrgan"
    infos = {info.name: info for info in plugin_infos(pm)}
    assert infos["builtin"].hooks == ("register_stages",)
    assert infos["esrgan"].version and infos["esrgan"].distribution == "esrgan-pipelines"


def test_plugin_manager_without_entry_points() -> None:
    assert stage_registry(Recorder()).ids() == [
        "builtin.denoise",
        "builtin.read",
        "builtin.resize",
        "builtin.write",
        "test.explode",
        "test.invert",
    ]


def test_a_plugin_with_a_misspelt_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def register_stage(self) -> list[StageSpec]:
            return []

    pm = plugin_manager(Typo())
    with pytest.raises(Exception, match="register_stage"):
        pm.check_pending()


def test_registering_the_same_plugin_twice_is_a_clear_error() -> None:
    recorder = Recorder()
    with pytest.raises(PluginLoadError, match="cannot register plugin"):
        plugin_manager(recorder, recorder)


def test_every_hook_is_a_documented_spec() -> None:
    from pipelines.docs import hook_functions

    hooks = hook_functions(hookspecs)
    assert set(hooks) == {
        "register_stages",
        "before_pipeline",
        "after_pipeline",
        "before_step",
        "after_step",
        "on_step_error",
    }
    pm = get_plugin_manager(entry_points=False)
    for name, fn in hooks.items():
        assert hasattr(pm.hook, name)
        doc = fn.__doc__ or ""
        assert len(doc.strip()) > 40, name
        for arg in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
            assert f"``{arg}``" in doc, f"{name}: argument {arg} undocumented"


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    write_image(path, np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    return path


def test_run_calls_lifecycle_hooks_in_order(tmp_path: Path) -> None:
    source = _image(tmp_path)
    recorder = Recorder()
    summary = run_text(
        f"""
        pipeline: hooks
        steps:
          - {{id: src, uses: builtin.read, with: {{path: "{source}"}}}}
          - {{id: inv, uses: test.invert}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/{{name}}.png"}}}}
        """,
        recorder,
    )
    assert recorder.calls == [
        ("before_pipeline", "hooks"),
        ("before_step", "src"),
        ("before_step", "inv"),
        ("before_step", "out"),
        ("after_step", "src:1:0"),
        ("after_step", "inv:1:0"),
        ("after_step", "out:0:1"),
        ("after_pipeline", "1"),
    ]
    assert summary.written == (str(tmp_path / "out" / "in.png"),)
    np.testing.assert_array_equal(read_image(summary.written[0]), 255 - read_image(source))


def test_a_failing_step_calls_on_step_error_and_writes_nothing(tmp_path: Path) -> None:
    source = _image(tmp_path)
    recorder = Recorder()
    with pytest.raises(StepError, match=r"^step 'boom' \(test.explode\): ValueError: kaboom$"):
        run_text(
            f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{source}"}}}}
              - {{id: boom, uses: test.explode}}
              - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/x.png"}}}}
            """,
            recorder,
        )
    assert ("on_step_error", "boom") in recorder.calls
    assert not any(name == "after_pipeline" for name, _ in recorder.calls)
    assert not (tmp_path / "out" / "x.png").exists()


def test_host_never_imports_the_plugin_or_torch() -> None:
    for path in PIPELINES_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            assert not any(
                n.split(".")[0] in ("esrgan_plugin", "training", "torch") for n in names
            ), path
    code = (
        "import sys, pipelines.cli, pipelines.runner.run, pipelines.hooks.manager, pipelines.config.validation;"
        "assert 'esrgan_plugin' not in sys.modules and 'torch' not in sys.modules, 'loaded at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
