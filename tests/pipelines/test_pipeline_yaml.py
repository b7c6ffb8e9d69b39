"""YAML pipelines: parsing with line numbers, --set overrides, and every kind of validation error."""

from __future__ import annotations

import pytest
from pydantic import Field

from pipelines.config.loader import ValidationError
from pipelines.hooks.markers import hookimpl
from pipelines.runner.registry import StageParams, StageSpec
from pipelines.testing import validate_text


class ModelParams(StageParams):
    out: str = Field("m.bin", description="where the artefact goes")


class UseParams(StageParams):
    model: str = Field(description="an artefact")


class FakePlugin:
    """An artefact producer and a transform that takes one, for reference checks."""

    @hookimpl
    def register_stages(self) -> list[StageSpec]:
        return [
            StageSpec(
                "fake.model",
                "makes an artefact",
                ModelParams,
                lambda p: p.out,
                consumes=None,
                produces="artefact",
            ),
            StageSpec("fake.use", "uses an artefact", UseParams, lambda image, p: image),
        ]


GOOD = """\
pipeline: demo
steps:
  - id: src
    uses: builtin.read
    with: {path: "in/*.png"}
  - id: clean
    uses: builtin.denoise
    with:
      method: gaussian
      sigma: 1.5
  - id: out
    uses: builtin.write
    with: {path: "out/{name}.png"}
"""


def issues(text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ValidationError) as info:
        validate_text(text, FakePlugin(), overrides=overrides, file="p.yaml")
    lines = [str(issue) for issue in info.value.issues]
    assert all("\n" not in line for line in lines)
    return lines


def one_issue(text: str, overrides: tuple[str, ...] = ()) -> str:
    found = issues(text, overrides)
    assert len(found) == 1, found
    return found[0]


def test_a_good_pipeline_validates_in_order_with_typed_params() -> None:
    pipeline = validate_text(GOOD)
    assert [s.id for s in pipeline.steps] == ["src", "clean", "out"]
    assert pipeline.step("clean").params.sigma == 1.5  # type: ignore[attr-defined]
    assert pipeline.step("clean").input == "src"
    assert pipeline.executor.type == "threads"
    assert pipeline.name == "demo"


def test_set_overrides_a_parameter_with_a_yaml_value() -> None:
    pipeline = validate_text(GOOD, overrides=["clean.sigma=3", "executor=processes"])
    assert pipeline.step("clean").params.sigma == 3.0  # type: ignore[attr-defined]
    assert pipeline.executor.type == "processes"


def test_not_yaml_names_the_line() -> None:
    text = "steps:\n  - id: a\n    uses: [builtin.read\n"
    assert one_issue(text).startswith("p.yaml:4: not valid YAML")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "pipeline: x\n", "steps: []\n"])
def test_not_a_pipeline_file(text: str) -> None:
    assert one_issue(text).startswith("p.yaml")


def test_unknown_stage_suggests_the_nearest_id() -> None:
    message = one_issue(GOOD.replace("builtin.denoise", "builtin.denoize"))
    assert message.startswith("p.yaml:7: step 'clean': unknown stage 'builtin.denoize'")
    assert "did you mean 'builtin.denoise'?" in message


def test_unknown_parameter_suggests_the_nearest_name() -> None:
    message = one_issue(GOOD.replace("sigma: 1.5", "sigmaa: 1.5"))
    assert message.startswith(
        "p.yaml:10: step 'clean' parameter 'sigmaa': unknown parameter of builtin.denoise"
    )
    assert "did you mean 'sigma'?" in message


def test_missing_required_parameter() -> None:
    message = one_issue(GOOD.replace('with: {path: "in/*.png"}', "with: {}"))
    assert message == "p.yaml:5: step 'src' parameter 'path': missing required parameter"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "valid number"), ("-1", "greater than 0"), ("[1, 2]", "valid number")],
)
def test_wrong_type_or_range(value: str, expected: str) -> None:
    message = one_issue(GOOD.replace("sigma: 1.5", f"sigma: {value}"))
    assert message.startswith("p.yaml:10: step 'clean' parameter 'sigma': ")
    assert expected in message


def test_parameter_of_another_method_is_refused() -> None:
    message = one_issue(GOOD.replace("sigma: 1.5", "size: 5"))
    assert "size is a parameter of method median, not gaussian" in message


def test_bad_write_pattern_is_caught_before_running() -> None:
    message = one_issue(GOOD.replace("out/{name}.png", "out/{nmae}.png"))
    assert message.startswith("p.yaml:13: step 'out' parameter 'path': unknown placeholder {nmae}")


def test_duplicate_step_id() -> None:
    message = one_issue(GOOD.replace("id: out", "id: clean"))
    assert message == "p.yaml:11: step 'clean': duplicate step id (first used at p.yaml:6)"


def test_duplicate_key_in_a_mapping() -> None:
    message = one_issue(GOOD.replace("sigma: 1.5", "sigma: 1.5\n      sigma: 2"))
    assert message == "p.yaml:11: step 'clean' parameter 'sigma': given twice (first at line 10)"


def test_unknown_step_key_and_top_level_key() -> None:
    found = issues(
        GOOD.replace(
            "    uses: builtin.denoise", "    usse: builtin.denoise\n    uses: builtin.denoise"
        )
        + "exeuctor: threads\n"
    )
    assert any(
        m.startswith("p.yaml:7: step 'clean': unknown key 'usse'; did you mean 'uses'?")
        for m in found
    )
    assert any(
        m.startswith("p.yaml:15: unknown top-level key 'exeuctor'; did you mean 'executor'?")
        for m in found
    )


def test_dangling_input() -> None:
    message = one_issue(
        GOOD.replace("    uses: builtin.write", "    uses: builtin.write\n    input: clena")
    )
    assert message.startswith(
        "p.yaml:13: step 'out': input refers to step 'clena', which does not exist"
    )
    assert "did you mean 'clean'?" in message


ARTEFACTS = """\
steps:
  - id: mk
    uses: fake.model
  - id: src
    uses: builtin.read
    with: {path: x.png}
  - id: fx
    uses: fake.use
    with: {model: "${steps.mk.output}"}
"""


def test_artefact_reference_orders_the_steps() -> None:
    pipeline = validate_text(ARTEFACTS, FakePlugin())
    fx = pipeline.step("fx")
    assert fx.references == ("mk",) and fx.input == "src"
    assert [s.id for s in pipeline.steps].index("mk") < [s.id for s in pipeline.steps].index("fx")


def test_dangling_reference() -> None:
    message = one_issue(ARTEFACTS.replace("steps.mk.output", "steps.mkk.output"))
    assert message.startswith(
        "p.yaml:9: step 'fx' parameter 'model': ${steps.mkk.output} refers to a step that does not exist"
    )
    assert "did you mean 'mk'?" in message


def test_reference_to_images_is_the_wrong_kind() -> None:
    message = one_issue(ARTEFACTS.replace("steps.mk.output", "steps.src.output"))
    assert (
        "p.yaml:9: step 'fx' parameter 'model': ${steps.src.output}: step 'src' (builtin.read) produces images"
        in message
    )


def test_step_fed_the_wrong_kind_of_input() -> None:
    text = ARTEFACTS.replace("  - id: src\n    uses: builtin.read\n    with: {path: x.png}\n", "")
    message = one_issue(text)
    assert message.startswith(
        "p.yaml:4: step 'fx': fake.use consumes images, but the previous step 'mk' (fake.model) produces artefact"
    )
    assert "input: <id>" in message


def test_sink_output_cannot_feed_a_transform() -> None:
    message = one_issue(GOOD + "  - id: more\n    uses: builtin.denoise\n")
    assert (
        "step 'more': builtin.denoise consumes images, but the previous step 'out' (builtin.write) produces no output"
        in message
    )


def test_first_step_needs_an_input() -> None:
    message = one_issue("steps:\n  - id: a\n    uses: builtin.denoise\n")
    assert (
        message
        == "p.yaml:2: step 'a': builtin.denoise needs images as input, but it is the first step"
    )


def test_cycle() -> None:
    text = (
        "steps:\n"
        "  - {id: src, uses: builtin.read, with: {path: x.png}}\n"
        "  - {id: a, uses: builtin.denoise, input: b}\n"
        "  - {id: b, uses: builtin.denoise, input: a}\n"
    )
    message = one_issue(text)
    assert message.startswith("p.yaml:3: step 'a': the steps form a cycle 'a' -> 'b' -> 'a'")


def test_source_params_cannot_reference_artefacts() -> None:
    message = one_issue(ARTEFACTS.replace("{path: x.png}", '{path: "${steps.mk.output}"}'))
    assert "p.yaml:6: step 'src' parameter 'path': builtin.read plans its work" in message


def test_set_errors_name_the_option() -> None:
    message = one_issue(GOOD, ("clean.sigma=-2",))
    assert message.startswith(
        "--set clean.sigma=-2: step 'clean' parameter 'sigma': Input should be greater than 0"
    )
    assert one_issue(GOOD, ("claen.sigma=2",)).startswith(
        "--set claen.sigma=2: no step with id 'claen'; did you mean 'clean'?"
    )
    assert one_issue(GOOD, ("sigma=2",)).startswith("--set sigma=2: expected STEP.PARAM=VALUE")


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ("threadz", "executor type: Input should be"),
        ("{address: localhost}", "should look like tcp://host:8786"),
        (
            "{type: processes, workers: 0}",
            "executor workers: Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_executor(executor: str, expected: str) -> None:
    message = one_issue(f"executor: {executor}\n" + GOOD)
    assert message.startswith("p.yaml:1: ") and expected in message


def test_executor_shorthands() -> None:
    assert (
        validate_text("executor: tcp://sched:8786\n" + GOOD).executor.address == "tcp://sched:8786"
    )
    assert (
        validate_text("executor: {address: 'tcp://h:1', connect_timeout: 2}\n" + GOOD).executor.type
        == "distributed"
    )


def test_yaml_merge_keys_are_supported() -> None:
    text = (
        "steps:\n"
        "  - {id: src, uses: builtin.read, with: &r {path: x.png, max_pixels: 10}}\n"
        "  - {id: src2, uses: builtin.read, with: {<<: *r, max_pixels: 20}}\n"
    )
    pipeline = validate_text(text)
    assert pipeline.step("src2").params.max_pixels == 20  # type: ignore[attr-defined]
    assert pipeline.step("src2").params.path == "x.png"  # type: ignore[attr-defined]


def test_several_problems_are_reported_together() -> None:
    text = GOOD.replace("sigma: 1.5", "sigma: -1").replace("out/{name}.png", "out/x.txt")
    assert len(issues(text)) == 2


def test_ranges_stay_ranges_not_base_60_numbers() -> None:
    text = """
    steps:
      - {id: src, uses: builtin.read, with: {path: in.ome.zarr, z: 5:10, t: 0}}
      - {id: out, uses: builtin.write, with: {path: out.ome.zarr}}
    """
    pipeline = validate_text(text)  # YAML 1.1 would read 5:10 as 310
    assert pipeline.step("src").params.z == "5:10"  # type: ignore[attr-defined]
    assert pipeline.step("src").params.t == 0  # type: ignore[attr-defined]
    overridden = validate_text(text, overrides=["src.z=1:30"])
    assert overridden.step("src").params.z == "1:30"  # type: ignore[attr-defined]


def test_misspelt_steps_key_is_suggested() -> None:
    found = issues(GOOD.replace("steps:", "stpes:"))
    assert any("missing 'steps:'" in line and "did you mean 'stpes'" not in line for line in found)
    assert any("unknown top-level key 'stpes'; did you mean 'steps'?" in line for line in found)


def test_a_misspelt_input_never_suggests_the_step_itself() -> None:
    text = GOOD.replace("uses: builtin.denoise", "uses: builtin.denoise\n    input: clen")
    message = one_issue(text)
    assert "input refers to step 'clen', which does not exist" in message
    assert "did you mean 'clean'" not in message


def test_every_repeated_key_of_a_file_is_reported() -> None:
    text = GOOD.replace("pipeline: demo", "pipeline: demo\npipeline: again").replace(
        "sigma: 1.5", "sigma: 1.5\n      sigma: 2"
    )
    found = issues(text)
    assert len(found) == 2
    assert "key 'pipeline' given twice (first at line 1)" in found[0]
    assert "step 'clean' parameter 'sigma': given twice" in found[1]


def test_merge_keys_are_resolved_and_keep_their_lines() -> None:
    text = GOOD.replace(
        "pipeline: demo", "pipeline: demo\nbase: &base {method: gaussian, sigma: 9}"
    ).replace("      method: gaussian\n      sigma: 1.5", "      <<: *base\n      sigma: 1.5")
    found = issues(text)  # `base` is not a pipeline key; the merged values are still checked
    assert found == ["p.yaml:2: unknown top-level key 'base'"]
    pipeline = validate_text(text.replace("base: &base", "description: &base"))
    assert pipeline.step("clean").params.sigma == 1.5  # type: ignore[attr-defined]
