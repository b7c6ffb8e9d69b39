"""Deprecated alias of :mod:`pipelines.runner.registry` (the host's new layout); removed in the next release."""

import warnings

from pipelines.runner.registry import *  # noqa: F403

warnings.warn(
    "pipelines.registry is deprecated: import from pipelines.runner.registry (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
