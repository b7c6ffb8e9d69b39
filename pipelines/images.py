"""Deprecated alias of :mod:`pipelines.io.items` (the host's new layout); removed in the next release."""

import warnings

from pipelines.io.items import *  # noqa: F403

warnings.warn(
    "pipelines.images is deprecated: import from pipelines.io.items (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
