"""Exceptions raised by the ESRGAN plugin; each message is one line naming what and where."""


class EsrganError(Exception):
    """Base class: an error the user can fix (bad file, bad value), shown without a traceback."""


class CheckpointError(EsrganError):
    """A model file that cannot be read, is unsafe, or is not an ESRGAN-family network."""


class InterpolationError(EsrganError):
    """Two models that cannot be interpolated, or an alpha outside [0, 1]."""


class InferenceError(EsrganError):
    """Bad inference settings or an image the model cannot process."""


class UsageError(EsrganError):
    """Command-line arguments that do not fit together (exit code 2)."""
