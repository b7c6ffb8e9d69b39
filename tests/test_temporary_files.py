"""No test leaves files outside its temporary folder: temporary files of this process, of child
processes and of Dask's workers go under the session's pytest folder (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipelines.config.schema import ExecutorConfig
from pipelines.runner.executors import session


def test_temporary_files_of_this_process_and_its_children_stay_in_the_session_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.getbasetemp()
    assert Path(tempfile.gettempdir()).is_relative_to(base)
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(child.stdout.strip()).is_relative_to(base)
    assert Path(os.environ["TMPDIR"]).is_relative_to(base)


def _scratch(dask_worker: object) -> str:
    return str(dask_worker.local_directory)  # type: ignore[attr-defined]


def test_dask_workers_scratch_space_stays_in_the_session_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import dask
    from distributed import get_client

    base = tmp_path_factory.getbasetemp()
    assert Path(dask.config.get("temporary-directory")).is_relative_to(base)
    with session(ExecutorConfig(type="processes", workers=1)) as compute:
        assert compute([]) == []
        folders = get_client().run(_scratch)
    assert folders and all(Path(f).is_relative_to(base) for f in folders.values()), folders
