"""Deprecated alias of :mod:`pipelines.hooks.specs` (the host's new layout); removed in the next release."""

import warnings

from pipelines.hooks.specs import *  # noqa: F403

warnings.warn(
    "pipelines.hookspecs is deprecated: import from pipelines.hooks.specs (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
