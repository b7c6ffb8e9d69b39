"""The one error type of video I/O: a one-line message naming the file and what was expected."""

from __future__ import annotations

from pipelines.errors import ImageIOError


class VideoError(ImageIOError):
    """A video that cannot be read, encoded or written as asked (exit code 1 through ``pipelines run``)."""


def describe_av_error(exc: BaseException) -> str:
    """FFmpeg's message for ``exc`` on one line, without the file name PyAV repeats."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
