"""Artefact steps run exactly once, before the image graph that uses their values.

Regression: with one graph, an artefact referenced by an image step's parameters was fused
into the array graph by Dask and computed a second time (a training stage ran twice, racing
itself on the same experiment folder).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from pydantic import Field

from pipelines.hooks.markers import hookimpl
from pipelines.io.images import read_image, write_image
from pipelines.runner.outputs import Artefact
from pipelines.runner.registry import StageParams, StageSpec
from pipelines.testing import run_text


class CountingPlugin:
    """An artefact stage that counts its calls, and a transform that uses its value."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    class MakeParams(StageParams):
        value: int = Field(description="the artefact's value")

    class AddParams(StageParams):
        amount: str = Field(description="how much to add (an artefact reference)")

    def make(self, params: MakeParams) -> str:
        with self.lock:
            self.calls += 1
        return str(params.value)

    @staticmethod
    def add(image: np.ndarray, params: AddParams) -> np.ndarray:
        return (image.astype(np.int32) + int(params.amount)).clip(0, 255).astype(image.dtype)

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [
            StageSpec(
                "test.make",
                "make a number",
                self.MakeParams,
                self.make,
                consumes=None,
                produces="artefact",
            ),
            StageSpec("test.add", "add a number to every pixel", self.AddParams, self.add),
        ]


def test_artefact_is_computed_once_and_its_value_reaches_image_steps(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_image(tmp_path / f"{name}.png", np.full((4, 5, 3), 10, np.uint8))
    plugin = CountingPlugin()
    summary = run_text(
        f"""
        pipeline: phases
        steps:
          - {{id: n, uses: test.make, with: {{value: 7}}}}
          - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/*.png"}}}}
          - {{id: plus, uses: test.add, with: {{amount: "${{steps.n.output}}"}}}}
          - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out/{{name}}.png"}}}}
        """,
        plugin,
    )
    assert plugin.calls == 1
    assert summary.artefacts == {"n": "7"}
    assert [int(read_image(p).max()) for p in summary.written] == [17, 17]


class StrictPlugin:
    """A stage whose parameter validator refuses anything but a digit string: a `${...}`
    reference must never reach it, and a bad literal value must still be reported."""

    class MakeParams(StageParams):
        value: int = Field(description="the artefact's value")

    class UseParams(StageParams):
        amount: str = Field(description="digits only", pattern=r"^[0-9]+$")
        seen: list[str] = Field(default_factory=list, description="unused")

    @staticmethod
    def make(params: MakeParams) -> str:
        return str(params.value)

    @staticmethod
    def add(image: np.ndarray, params: UseParams) -> np.ndarray:
        assert "${" not in params.amount
        return np.clip(image.astype(int) + int(params.amount), 0, 255).astype(image.dtype)

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [
            StageSpec(
                id="strict.make",
                description="An artefact.",
                params=self.MakeParams,
                fn=self.make,
                consumes=None,
                produces="artefact",
            ),
            StageSpec(id="strict.add", description="Add.", params=self.UseParams, fn=self.add),
        ]


def test_references_are_resolved_before_the_stage_validates_them(tmp_path: Path) -> None:
    write_image(tmp_path / "in.png", np.full((4, 4, 3), 10, np.uint8))
    pipeline = f"""
    steps:
      - {{id: make, uses: strict.make, with: {{value: 5}}}}
      - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in.png"}}}}
      - {{id: add, uses: strict.add, input: src, with: {{amount: "${{steps.make.output}}"}}}}
      - {{id: out, uses: builtin.write, with: {{path: "{tmp_path}/out.png"}}}}
    """
    run_text(pipeline, StrictPlugin())
    assert (read_image(tmp_path / "out.png") == 15).all()


def test_a_bad_literal_beside_a_reference_is_still_reported() -> None:
    import pytest

    from pipelines.config.loader import ValidationError
    from pipelines.testing import validate_text

    pipeline = """
    steps:
      - {id: make, uses: strict.make, with: {value: 5}}
      - {id: src, uses: builtin.read, with: {path: in.png}}
      - {id: add, uses: strict.add, input: src, with: {amount: "${steps.make.output}", seen: 3}}
    """
    with pytest.raises(ValidationError, match="parameter 'seen'"):
        validate_text(pipeline, StrictPlugin())


class ReportPlugin:
    """An artefact stage that writes two files and says so (an :class:`Artefact`), and an
    artefact stage that consumes its value."""

    class ReportParams(StageParams):
        folder: str = Field(description="where the report goes")

    class SizeParams(StageParams):
        pass

    @staticmethod
    def report(params: ReportParams) -> Artefact:
        folder = Path(params.folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.csv").write_text("a,b\n")
        (folder / "index.html").write_text("<html></html>")
        return Artefact(
            str(folder / "index.html"), (str(folder / "data.csv"), str(folder / "index.html"))
        )

    @staticmethod
    def size(value: str, params: SizeParams) -> str:
        return str(Path(value).stat().st_size)  # the plain value, not the Artefact

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [
            StageSpec("test.report", "a report", self.ReportParams, self.report, None, "artefact"),
            StageSpec("test.size", "its size", self.SizeParams, self.size, "artefact", "artefact"),
        ]


def test_the_files_an_artefact_stage_wrote_are_counted_and_its_value_is_passed_on(
    tmp_path: Path,
) -> None:
    summary = run_text(
        f"""
        pipeline: report
        steps:
          - {{id: report, uses: test.report, with: {{folder: "{tmp_path}/r"}}}}
          - {{id: size, uses: test.size, input: report}}
        """,
        ReportPlugin(),
    )
    assert summary.written == (str(tmp_path / "r" / "data.csv"), str(tmp_path / "r" / "index.html"))
    assert summary.artefacts == {"report": str(tmp_path / "r" / "index.html"), "size": "13"}
