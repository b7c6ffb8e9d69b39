"""Splitting a video into segments: frame ranges that are decoded, transformed and encoded independently.

A segment starts at a keyframe of the source where one lies near the wanted boundary (within
half a segment of it), so that its decoder wastes nothing; where the source's keyframes are
further apart than that, the segment starts at a fixed frame count and its decoder starts at the
keyframe before and drops the frames up to the segment's first. A last segment shorter than a
quarter of the length is merged into the one before it. Every output segment is encoded by an
encoder of its own, so it starts with a keyframe and references nothing outside itself.
"""

from __future__ import annotations

import numpy as np

from pipelines.io.video.index import FrameIndex

DEFAULT_SEGMENT_FRAMES = 120
"""Frames per segment of :func:`~pipelines.io.video.transform.transform_video` (5 s at 24 fps)."""


def plan_segments(index: FrameIndex, length: int = DEFAULT_SEGMENT_FRAMES) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) covering ``index``, about ``length`` frames each (see the module docstring)."""
    if length < 1:
        raise ValueError(f"segment length must be at least 1 frame, not {length}")
    total = len(index)
    keyframes = np.asarray(index.keyframes)
    bounds = [0]
    while bounds[-1] < total:
        start = bounds[-1]
        ideal = start + length
        if total - ideal < max(1, length // 4):
            bounds.append(total)
            break
        near = keyframes[
            (keyframes >= start + max(1, length // 2)) & (keyframes <= ideal + length // 2)
        ]
        stop = int(near[np.argmin(np.abs(near - ideal))]) if near.size else ideal
        bounds.append(min(stop, total))
    return list(zip(bounds[:-1], bounds[1:], strict=True))
