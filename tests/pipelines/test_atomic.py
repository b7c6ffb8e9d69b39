"""Atomic replacement: complete files only, ordinary permissions, nothing left on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pipelines.io.atomic import atomic_target


def test_file_appears_complete_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"
    old = os.umask(0o022)
    try:
        with atomic_target(target) as tmp:
            tmp.write_bytes(b"data")
            assert not target.exists()
    finally:
        os.umask(old)
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_target(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
