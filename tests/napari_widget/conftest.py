"""napari widget tests: napari's own viewer fixture (``make_napari_viewer``) under a display.

pyproject turns napari's, npe2's and pytest-qt's pytest plugins off for the rest of the suite
(they import Qt into every test process); ``make test`` runs this folder in a process of its
own with them on (``-p napari -p napari-plugin-engine -p npe2 -p pytest-qt``), under a virtual
display (``xvfb-run``) when there is no display. Without the plugins, napari or a display these
tests skip, or fail when ``TESTS_REQUIRE_NAPARI=1`` (``.ci/run`` sets it).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import pytest

REQUIRED = os.environ.get("TESTS_REQUIRE_NAPARI") == "1"


def unavailable(config: pytest.Config) -> str | None:
    """Why the napari tests cannot run here, or None."""
    if importlib.util.find_spec("napari") is None:
        return "napari is not installed (pip install 'esrgan-pipelines[napari]')"
    plugins = ("napari", "npe2", "pytest-qt")
    if not all(config.pluginmanager.has_plugin(name) for name in plugins):
        return "napari's pytest plugins are off: run with -p napari -p napari-plugin-engine -p npe2 -p pytest-qt (make test)"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: run under xvfb-run (make test does)"
    return None


@pytest.fixture
def napari_ready(request: pytest.FixtureRequest) -> None:
    reason = unavailable(request.config)
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"TESTS_REQUIRE_NAPARI=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture
def viewer_factory(napari_ready: None, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """napari's ``make_napari_viewer`` (it closes the viewers and checks for leaks)."""
    return request.getfixturevalue("make_napari_viewer")  # type: ignore[no-any-return]


@pytest.fixture
def bot(napari_ready: None, request: pytest.FixtureRequest) -> Any:
    """pytest-qt's ``qtbot``, once the plugins are known to be on."""
    return request.getfixturevalue("qtbot")
