"""Exceptions raised by the training package; each message is one line naming what and where."""


class TrainingError(Exception):
    """Base class: a training problem the user can fix (missing weights, bad file, bad data)."""
