"""Output locks: one holder at a time across processes, refused at once, never stale."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.builtin.files import WriteParams, write_images
from pipelines.io.images import write_image
from pipelines.io.locks import (
    LockFileError,
    OutputLockedError,
    hold,
    lock_path,
    output_location,
    output_lock,
    run_locks,
)
from pipelines.runner.tasks import StepError
from pipelines.testing import image_item, run_text

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


@pytest.mark.parametrize(
    ("pattern", "location"),
    [
        ("out/{name}.png", "out"),
        ("out/{parent}/{name}_x4.png", "out"),
        ("/data/out/x_{index}.tif", "/data/out"),
        ("{name}.png", "."),
        ("out/result.png", "out/result.png"),
        ("out/slide.zarr", "out/slide.zarr"),
        ("out/{name}.zarr", "out"),
    ],
)
def test_a_pattern_is_located_at_the_folder_above_its_first_placeholder(
    pattern: str, location: str
) -> None:
    assert output_location(pattern) == location


def test_a_pattern_write_is_refused_while_a_folder_upscale_holds_the_folder(
    tmp_path: Path,
) -> None:
    """``esrgan upscale -o out/`` calls ``output_lock("out/")``: a pipeline writing
    ``out/{name}.png`` meanwhile is refused, before it writes anything."""
    write_image(tmp_path / "in" / "a.png", _image())
    out = tmp_path / "out"
    holder = _holder(Path(f"{out}/"))
    try:
        with pytest.raises(StepError, match="OutputLockedError") as caught:
            run_text(f"""
            steps:
              - {{id: src, uses: builtin.read, with: {{path: "{tmp_path}/in/a.png"}}}}
              - {{id: out, uses: builtin.write, with: {{path: "{out}/{{name}}.png"}}}}
            """)
    finally:
        holder.terminate()
        holder.wait()
    message = str(caught.value)
    assert f"another process (pid {holder.pid}) is writing this output" in message
    assert "\n" not in message and str(lock_path(out)) in message
    assert not out.exists()  # refused while planning: nothing written


def test_a_folder_upscale_is_refused_while_a_pattern_write_holds_the_folder(
    tmp_path: Path,
) -> None:
    """The other order: while ``builtin.write`` to ``out/{name}.png`` plans and runs (its locks
    are held for the run), ``output_lock("out/")`` in another process is refused."""
    out = tmp_path / "out"
    with run_locks():
        write_images([image_item(_image(), "a")], WriteParams(path=f"{out}/{{name}}.png"))
        checker = subprocess.run(
            [sys.executable, "-c", HOLD, f"{out}/"], capture_output=True, text=True, timeout=120
        )
    assert checker.returncode != 0
    assert f"another process (pid {os.getpid()}) is writing this output" in checker.stderr
    assert not lock_path(out).exists()


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def _fail_on(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``os.<name>`` fail as on a completely full disk."""

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, name, no_space)


@pytest.mark.parametrize("call", ["write", "ftruncate", "open"])
def test_a_full_disk_while_locking_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    target = tmp_path / "new" / "deeper" / "out.zarr"
    _fail_on(monkeypatch, call)
    with pytest.raises(LockFileError) as caught, output_lock(target):
        pytest.fail("the block must not run without the lock")
    monkeypatch.undo()
    message = str(caught.value)
    assert message.startswith(f"{target}: cannot make the lock file {lock_path(target)}")
    assert "No space left on device" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no lock file, and no folder made for it


def test_a_full_disk_while_making_the_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "new" / "out.png"
    _fail_on(monkeypatch, "mkdir")
    with (
        pytest.raises(LockFileError, match=r"new/out.png: cannot make the lock file .*No space"),
        output_lock(target),
    ):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_locking_a_pipeline_output_is_a_one_line_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    write_image(tmp_path / "in.png", _image())
    job = tmp_path / "job.yaml"
    job.write_text(
        "steps:\n"
        f"  - {{id: src, uses: builtin.read, with: {{path: {tmp_path}/in.png}}}}\n"
        f"  - {{id: out, uses: builtin.write, with: {{path: {tmp_path}/out.zarr}}}}\n"
    )
    _fail_on(monkeypatch, "write")
    code = main(["run", str(job), "--quiet"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot make the lock file {tmp_path}/.out.zarr.lock (No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "job.yaml"]
