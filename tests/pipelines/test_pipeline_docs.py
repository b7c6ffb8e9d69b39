"""The reference docs are generated from the schemas, and nothing is left undocumented."""

from __future__ import annotations

from pipelines.docs import (
    BEGIN,
    DOC_PATH,
    END,
    hook_functions,
    render_stage_reference,
    splice,
)
from pipelines.hooks import specs as hookspecs
from pipelines.hooks.manager import build_registry, get_plugin_manager
from pipelines.testing import documentation_problems


def test_every_stage_and_parameter_has_a_description() -> None:
    registry = build_registry(get_plugin_manager())
    assert len(registry) >= 6
    assert documentation_problems(registry) == []


def test_every_hook_appears_in_the_reference() -> None:
    reference = render_stage_reference()
    for name in hook_functions(hookspecs):
        assert f"### `{name}(" in reference


def test_committed_docs_are_up_to_date() -> None:
    for path in (DOC_PATH,):
        document = path.read_text(encoding="utf-8")
        assert BEGIN in document and END in document, path
        assert splice(document, render_stage_reference()) == document, (
            f"{path.name} is stale: run `python -m pipelines.docs`"
        )


def test_readme_links_the_reference_instead_of_repeating_it() -> None:
    readme = (DOC_PATH.parents[1] / "README.md").read_text(encoding="utf-8")
    assert BEGIN not in readme and "docs/pipelines.md" in readme
