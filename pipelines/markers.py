"""Deprecated alias of :mod:`pipelines.hooks.markers` (the host's new layout); removed in the next release."""

import warnings

from pipelines.hooks.markers import *  # noqa: F403

warnings.warn(
    "pipelines.markers is deprecated: import from pipelines.hooks.markers (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
