"""Deprecated alias of :mod:`pipelines.hooks.manager` (the host's new layout); removed in the next release."""

import warnings

from pipelines.hooks.manager import *  # noqa: F403

warnings.warn(
    "pipelines.plugins is deprecated: import from pipelines.hooks.manager (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
