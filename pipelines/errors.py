"""Exceptions of the pipeline host; each message is one line naming the file, field or value."""


class PipelineError(Exception):
    """Base class: an error the user can fix, reported in one line without a traceback."""


class ImageIOError(PipelineError):
    """An image file that cannot be read or written."""
