"""Deprecated alias of :mod:`pipelines.io.images` (the host's new layout); removed in the next release."""

import warnings

from pipelines.io.images import *  # noqa: F403

warnings.warn(
    "pipelines.imageio is deprecated: import from pipelines.io.images (or pipelines.api)",
    DeprecationWarning,
    stacklevel=2,
)
