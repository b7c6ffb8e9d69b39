"""Fuzzing YAML documents: pipelines and experiments generated from their schemas, then broken
(wrong types, unknown keys, references to nowhere, anchors and merge keys, very deep nesting,
huge strings, exponential alias expansion, stray characters)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from properties import result_or_error

from pipelines.config.loader import ValidationError, parse_config
from pipelines.config.schema import Pipeline
from pipelines.config.validation import validate
from pipelines.hooks.manager import build_registry, get_plugin_manager
from pipelines.runner.registry import StageRegistry
from training.config import TrainConfig, load_config
from training.errors import TrainingError

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def registry() -> StageRegistry:
    return build_registry(get_plugin_manager())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(("default", "photos/*.png", "out/{name}.png", "x.zarr", "${steps.a.output}")),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
IDS = ("src", "sr", "out", "a", "b", "")


@st.composite
def step_dicts(draw: st.DrawFn) -> dict[Any, Any]:
    """One step from the registry's schemas: real stages and parameters, sometimes wrong."""
    stages = [spec.id for spec in registry()]
    uses = draw(st.sampled_from(stages) | st.sampled_from(("builtin.reed", "", "x")) | scalars)
    step: dict[Any, Any] = {"id": draw(st.sampled_from(IDS) | scalars), "uses": uses}
    if draw(st.booleans()):
        step["input"] = draw(st.sampled_from(IDS) | scalars)
    params: dict[Any, Any] = {}
    if isinstance(uses, str) and uses in registry():
        fields = list(registry().get(uses).params.model_fields)
        for name in draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True)):
            params[name] = draw(values)
    if draw(st.booleans()):
        params[draw(st.text(max_size=10))] = draw(values)
    if params or draw(st.booleans()):
        step["with"] = params
    if draw(st.integers(0, 5)) == 0:
        step[draw(st.text(max_size=8))] = draw(values)
    return step


@st.composite
def pipeline_texts(draw: st.DrawFn) -> str:
    doc: dict[Any, Any] = {"steps": draw(st.lists(step_dicts(), min_size=0, max_size=5))}
    if draw(st.booleans()):
        doc["pipeline"] = draw(scalars)
    if draw(st.booleans()):
        doc["executor"] = draw(
            st.sampled_from(("threads", "processes", "tcp://h:1", "bad")) | values
        )
    if draw(st.integers(0, 5)) == 0:
        doc[draw(st.text(max_size=8))] = draw(values)
    return draw(broken(yaml.safe_dump(doc, sort_keys=False)))


@st.composite
def broken(draw: st.DrawFn, text: str) -> str:
    """``text`` with zero to two YAML-level breakages."""
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(
            st.sampled_from(("deep", "laughs", "merge", "huge", "chars", "cut", "alias", "tags"))
        )
        if kind == "deep":
            n = draw(st.sampled_from((50, 500, 5000, 50000)))
            nested = draw(st.sampled_from(("[" * n + "]" * n, "{a: " * n + "1" + "}" * n)))
            text += f"\ndeep: {nested}\n"
        elif kind == "laughs":
            rows = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
            rows += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
            text = "\n".join(rows) + "\n" + text.replace("steps:", "steps: &s", 1)
            text += "\nbomb: *a9\n"
        elif kind == "merge":
            text = "base: &base {uses: builtin.read, with: {path: x.png}}\n" + text
            text = text.replace("- id:", "- <<: *base\n  id:", 1)
        elif kind == "huge":
            text += f"\ndescription: {'x' * draw(st.sampled_from((10**5, 4 * 10**6)))}\n"
        elif kind == "chars" and text:
            at = draw(st.integers(0, len(text)))
            text = (
                text[:at]
                + draw(st.text(alphabet=":-[]{}&*!|>'\"%@`#,\t\n ", max_size=4))
                + text[at:]
            )
        elif kind == "cut" and text:
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "alias":
            text += "\nundefined: *nowhere\n"
        elif kind == "tags":
            text += draw(
                st.sampled_from(
                    (
                        "\nx: !!python/object/apply:os.system [touch /tmp/esrgan-fuzz-pwned]\n",
                        "\nx: !!python/name:os.system\n",
                        "\nx: !custom 1\n",
                        "\nx: !!binary aGVsbG8=\n",
                        "\nx: !!set {a, b}\n",
                        "\n? [complex, key]\n: 1\n",
                    )
                )
            )
    return text


def _validate(text: str) -> Pipeline:
    return validate(parse_config(text, "fuzzed.yaml"), registry())


@given(pipeline_texts())
def test_pipeline_yaml_validates_or_fails_cleanly(text: str) -> None:
    """A pipeline document: a validated Pipeline or one-line, line-numbered issues."""
    outcome = result_or_error(lambda: _validate(text), ValidationError)
    if isinstance(outcome, Pipeline):
        assert outcome.steps
    assert not Path("/tmp/esrgan-fuzz-pwned").exists()


def _experiment(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "training" / "configs" / name).read_text())


EXPERIMENTS = [_experiment(n) for n in ("tiny-psnr.yaml", "tiny-gan.yaml", "default-psnr.yaml")]


def _field_paths(model: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, info in model.model_fields.items():
        paths.append((*prefix, name))
        sub = info.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            paths.extend(_field_paths(sub, (*prefix, name)))
    return paths


FIELDS = _field_paths(TrainConfig)


@st.composite
def experiment_texts(draw: st.DrawFn) -> str:
    """A shipped experiment with fields set to random values, dropped, or unknown ones added."""
    import copy

    doc = copy.deepcopy(draw(st.sampled_from(EXPERIMENTS)))
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(FIELDS))
        parent = doc
        for part in path[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {}
            parent = parent[part]
        kind = draw(st.sampled_from(("set", "drop", "unknown")))
        if kind == "set":
            parent[path[-1]] = draw(values)
        elif kind == "drop":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(max_size=8))] = draw(values)
    return draw(broken(yaml.safe_dump(doc, sort_keys=False)))


@given(experiment_texts())
def test_experiment_yaml_validates_or_fails_cleanly(text: str) -> None:
    """An experiment file: a TrainConfig or a one-line TrainingError naming file:line and field."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.yaml"
        path.write_text(text)
        outcome = result_or_error(lambda: load_config(path), TrainingError)
        if isinstance(outcome, TrainConfig):
            assert outcome.optim.lr is not None and outcome.optim.lr > 0
    assert not Path("/tmp/esrgan-fuzz-pwned").exists()
