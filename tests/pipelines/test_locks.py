"""Output locks: one holder at a time across processes, refused at once, never stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.io.locks import OutputLockedError, hold, lock_path, output_lock, run_locks

HOLD = """
import sys, time
from pipelines.io.locks import output_lock
with output_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(target: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_naming_the_output_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    holder = _holder(target)
    try:
        with (
            pytest.raises(
                OutputLockedError, match=rf"out.png: another process \(pid {holder.pid}\)"
            ),
            output_lock(target),
        ):
            pass
    finally:
        holder.terminate()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    target = tmp_path / "out.zarr"
    holder = _holder(target)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(target).exists()  # the file stays, the kernel dropped the lock
    with output_lock(target):
        assert lock_path(target).read_text().strip() == str(os.getpid())
    assert not lock_path(target).exists()


def test_lock_file_is_removed_and_reacquired(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    for _ in range(3):
        with output_lock(target):
            assert lock_path(target) == tmp_path / ".folder.lock"
        assert not lock_path(target).exists()


def test_run_scope_holds_until_it_ends(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    hold(target)  # outside a run: nothing is locked
    assert not lock_path(target).exists()
    with run_locks():
        hold(target)
        hold(target)  # twice in one run is fine
        assert lock_path(target).exists()
        checker = subprocess.run(
            [sys.executable, "-c", HOLD, str(target)], capture_output=True, text=True, timeout=120
        )
        assert checker.returncode != 0 and "another process" in checker.stderr
    assert not lock_path(target).exists()


def test_urls_are_not_locked(tmp_path: Path) -> None:
    start = time.monotonic()
    with output_lock("s3://bucket/out.zarr"), output_lock("s3://bucket/out.zarr"):
        pass
    assert time.monotonic() - start < 5
