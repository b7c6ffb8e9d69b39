"""Exceptions raised by the training package; each message is one line naming what and where."""

from esrgan_plugin.errors import EsrganError


class TrainingError(EsrganError):
    """Base class: a training problem the user can fix (missing weights, bad file, bad data)."""
