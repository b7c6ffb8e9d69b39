"""The CLI chooses a non-spinning OpenMP wait policy before torch loads, and respects the user's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from esrgan_plugin.runtime import quiet_openmp_waits


def test_cli_import_leaves_torch_unloaded_and_sets_passive() -> None:
    code = (
        "import os, sys; os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "import esrgan_plugin.cli as cli\n"
        "assert 'torch' not in sys.modules, 'esrgan_plugin.cli imported torch'\n"
        "assert cli.quiet_openmp_waits() is True\n"
        "import esrgan_plugin\n"
        "assert 'torch' not in sys.modules\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"


def test_user_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    quiet_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_reuse_freed_memory_once_and_opt_out() -> None:
    code = (
        "import os; os.environ['ESRGAN_REUSE_MEMORY'] = '0'\n"
        "from esrgan_plugin.runtime import reuse_freed_memory\n"
        "assert reuse_freed_memory() is False and reuse_freed_memory() is False\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    if sys.platform == "linux":
        code = "from esrgan_plugin.runtime import reuse_freed_memory as r\nassert r() and r()\n"
        env = {k: v for k, v in os.environ.items() if k != "ESRGAN_REUSE_MEMORY"}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
