"""Progress of a segment job in frames, read from its job folder while the segments run.

Segment tasks note how many frames they have encoded in the job folder (see
:meth:`~pipelines.io.video.job.VideoJob.report`), so progress works the same on threads, worker
processes and a cluster sharing the file system: a thread polls the folder and advances the
project's progress line (:class:`~pipelines.runner.progress.ProgressLine`) in frames.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TextIO

from pipelines.io.video.job import VideoJob
from pipelines.runner.progress import ProgressLine

INTERVAL = 0.5
"""Seconds between two looks at the job folder."""


@contextlib.contextmanager
def frame_progress(job: VideoJob, reused: int, out: TextIO | None) -> Iterator[None]:
    """Draw ``done/total frames | rate | ETA`` on ``out`` while the block runs (nothing without ``out``)."""
    total = sum(stop - start for start, stop in job.plan) - reused
    if out is None or total <= 0:
        yield
        return
    line = ProgressLine(total, out, unit="frames")
    line.draw()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(INTERVAL):
            _update(line, job, reused)

    thread = threading.Thread(target=poll, name="video-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _update(line, job, reused)
        line.finish()


def _update(line: ProgressLine, job: VideoJob, reused: int) -> None:
    done = min(line.total, max(0, job.frames_done() - reused))
    if done > line.done:
        line.advance(done - line.done)
