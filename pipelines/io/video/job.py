"""The folder of a resumable segment job, ``.NAME.job/`` beside the output ``NAME``.

::

    .out.mp4.job/
        job.json            the fingerprint (the caller's, the encoder settings, the source, the plan)
        seg-000003.mkv      a finished segment (frames of segment 3)
        seg-000003.json     its record: frames, size, SHA-256, reordering depth; written last
        seg-000004.mkv.TOKEN.partial, seg-000004.count   a segment being encoded, its frames so far
        joined.partial      the output being joined, renamed over the output when complete
        cancelled           present while a failed run stops its remaining segment tasks

A segment counts as finished only when its record exists and the file's checksum matches it, so
a job killed at any moment (even between writing a segment and its record) redoes at most the
segments in flight. A job folder made with another fingerprint is refused (it is never mixed
with this job's segments) unless the job is restarted, which clears it. The folder is removed
once the output is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.io.video.errors import VideoError
from pipelines.io.video.join import Segment, segment_delay

FORMAT = 1
"""Version of the job folder layout (part of the fingerprint)."""

SEGMENT_SUFFIX = ".mkv"
CANCELLED = "cancelled"
SEGMENT_MUXER = "matroska"


def job_folder(target: str | os.PathLike[str]) -> Path:
    """``.NAME.job`` beside the output ``NAME``."""
    path = Path(os.path.abspath(target))
    return path.parent / f".{path.name}.job"


def fingerprint_digest(fingerprint: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-ready fingerprint."""
    text = json.dumps(fingerprint, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class JobState:
    """Where a job stands before this run: the segments already finished and their frames."""

    done: frozenset[int]
    reused_frames: int


@dataclass(frozen=True)
class VideoJob:
    """A segment job writing ``target`` from the segments ``plan`` (frame ranges) in ``folder``."""

    target: str
    folder: str
    plan: tuple[tuple[int, int], ...]
    fingerprint: Mapping[str, Any]
    digest: str

    @classmethod
    def create(
        cls,
        target: str | os.PathLike[str],
        plan: Sequence[tuple[int, int]],
        fingerprint: Mapping[str, Any],
    ) -> VideoJob:
        full = {"format": FORMAT, "plan": [list(p) for p in plan], **fingerprint}
        return cls(
            str(target),
            str(job_folder(target)),
            tuple((int(a), int(b)) for a, b in plan),
            _normal(full),
            fingerprint_digest(full),
        )

    # ------------------------------------------------------------------ files

    def segment_path(self, k: int) -> Path:
        return Path(self.folder) / f"seg-{k:06d}{SEGMENT_SUFFIX}"

    def record_path(self, k: int) -> Path:
        return Path(self.folder) / f"seg-{k:06d}.json"

    def partial_path(self, k: int, token: str = "") -> Path:
        """Where a writer of segment ``k`` encodes (``token`` keeps two writers of it apart)."""
        return Path(self.folder) / f"seg-{k:06d}{SEGMENT_SUFFIX}.{token}.partial"

    def count_path(self, k: int) -> Path:
        return Path(self.folder) / f"seg-{k:06d}.count"

    def joined_path(self) -> Path:
        return Path(self.folder) / "joined.partial"

    # ------------------------------------------------------------------ planning (client side)

    def open(self, restart: bool) -> JobState:
        """Create the folder, or resume it; refuses a folder of another job unless ``restart``."""
        folder = Path(self.folder)
        manifest = folder / "job.json"
        if folder.exists() and (restart or not manifest.is_file()):
            shutil.rmtree(folder)
        if manifest.is_file():
            stored = json.loads(manifest.read_text())
            if stored.get("digest") != self.digest:
                changed = _changed_keys(stored.get("fingerprint", {}), self.fingerprint)
                raise VideoError(
                    f"{self.target}: an unfinished job for this output was made with other "
                    f"{', '.join(changed) or 'settings'}; restart it (restart: true / --restart) to start over"
                )
            self._remove_leftovers()
            done = frozenset(k for k in range(len(self.plan)) if self.finished(k))
            frames = sum(self.plan[k][1] - self.plan[k][0] for k in done)
            return JobState(done, frames)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"digest": self.digest, "fingerprint": self.fingerprint, "target": self.target}
        _write_json(manifest, record)
        return JobState(frozenset(), 0)

    def _remove_leftovers(self) -> None:
        for path in Path(self.folder).iterdir():
            if path.name.endswith((".partial", ".count", ".tmp")) or path.name == CANCELLED:
                path.unlink(missing_ok=True)

    def cancel(self, wait: float = 30.0) -> None:
        """Ask the segment tasks still running to stop, and wait (up to ``wait`` s) until they have.

        A task checks between batches (:meth:`cancelled`) and drops its partial file; a task on a
        worker that is gone never does, hence the bound.
        """
        folder = Path(self.folder)
        if not folder.is_dir():
            return
        (folder / CANCELLED).touch()
        deadline = time.monotonic() + wait
        while any(folder.glob("*.partial")) and time.monotonic() < deadline:
            time.sleep(0.05)

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called for this run."""
        return (Path(self.folder) / CANCELLED).exists()

    def finished(self, k: int) -> bool:
        """True when segment ``k`` has a record and its file matches the record's checksum."""
        record = self.record(k)
        if record is None:
            return False
        path = self.segment_path(k)
        if not path.is_file() or path.stat().st_size != record.get("bytes"):
            return False
        return _sha256(path) == record.get("sha256")

    def record(self, k: int) -> dict[str, Any] | None:
        try:
            record = json.loads(self.record_path(k).read_text())
        except (OSError, ValueError):
            return None
        start, stop = self.plan[k]
        if (
            record.get("start") != start
            or record.get("stop") != stop
            or record.get("job") != self.digest
        ):
            return None
        return dict(record)

    # ------------------------------------------------------------------ segment tasks (worker side)

    def commit(self, k: int, partial: Path) -> None:
        """Make the encoded ``partial`` the finished segment ``k``: rename, then record."""
        start, stop = self.plan[k]
        final = self.segment_path(k)
        delay = segment_delay(partial, stop - start)
        digest = _sha256(partial)
        size = partial.stat().st_size
        os.replace(partial, final)
        record = {
            "job": self.digest,
            "start": start,
            "stop": stop,
            "frames": stop - start,
            "bytes": size,
            "sha256": digest,
            "delay": delay,
        }
        _write_json(self.record_path(k), record)
        self.count_path(k).unlink(missing_ok=True)

    def report(self, k: int, frames: int) -> None:
        """Note that ``frames`` frames of segment ``k`` are encoded (read by the progress monitor)."""
        _write_text(self.count_path(k), str(frames))

    def frames_done(self) -> int:
        """Frames encoded so far: finished segments plus the counts of segments in flight."""
        total = 0
        for k, (start, stop) in enumerate(self.plan):
            if self.record_path(k).is_file():
                total += stop - start
                continue
            try:
                total += int(self.count_path(k).read_text() or 0)
            except (OSError, ValueError):
                continue
        return total

    # ------------------------------------------------------------------ joining (client side)

    def segments(self) -> list[Segment]:
        """Every segment, checked finished, in order (for the join)."""
        out = []
        for k, (start, stop) in enumerate(self.plan):
            record = self.record(k)
            if record is None or not self.segment_path(k).is_file():
                raise VideoError(
                    f"{self.target}: segment {k} (frames {start}-{stop - 1}) is missing"
                )
            out.append(Segment(str(self.segment_path(k)), start, stop, int(record["delay"])))
        return out

    def finish(self) -> None:
        """Rename the joined output into place and remove the job folder."""
        os.replace(self.joined_path(), self.target)
        shutil.rmtree(self.folder, ignore_errors=True)


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The fingerprint entries (one level into mappings) that differ."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif _normal(a) != _normal(b):
            changed.append(key)
    return changed


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    _write_text(path, json.dumps(value, sort_keys=True, default=str, indent=1))


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a unique temporary name, then rename)."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
