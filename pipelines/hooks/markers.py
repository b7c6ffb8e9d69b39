"""The pluggy markers of the pipeline host; one project name for hooks and the entry-point group."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "pipelines"
"""Pluggy project name, and the setuptools entry-point group that plugins are found under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a function in :mod:`pipelines.hooks.specs` as a hook specification."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's function as the implementation of a hook (``@hookimpl``)."""
