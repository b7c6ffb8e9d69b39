"""Video files as frame arrays: probing, frame-accurate decoding, encoding, segment jobs.

A video is read as a (T, H, W, C) uint8 or uint16 array (RGB, or RGBA when the source has
alpha; 16-bit when the source has more than 8 bits per sample) and written with an
:class:`~pipelines.io.video.settings.EncodeSettings`. Long videos are processed as segment jobs
(:mod:`pipelines.io.video.transform`): frame ranges decoded, transformed and encoded
independently (on threads, worker processes or a cluster), then joined without re-encoding, with
the source's audio, subtitles, data streams, chapters and metadata copied. Nothing here imports
PyAV at module level: listing stages must stay fast.
"""

from pipelines.io.video.errors import VideoError
from pipelines.io.video.probe import (
    Chapter,
    ColourTags,
    StreamInfo,
    VideoInfo,
    is_video,
    probe_video,
)
from pipelines.io.video.settings import EncodeSettings

__all__ = [
    "Chapter",
    "ColourTags",
    "EncodeSettings",
    "StreamInfo",
    "VideoError",
    "VideoInfo",
    "is_video",
    "probe_video",
]
