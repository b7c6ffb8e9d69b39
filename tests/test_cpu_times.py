"""The CPU-time report (tests/cpu_times.py): each test's CPU, its children's included."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_the_report_lists_tests_by_their_cpu_time(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = str(Path(__file__).parent)  # where the plugin is, for the child pytest
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # napari's would load Qt
    pytester.makepyfile(
        """
        import subprocess, sys

        def test_child_burns_cpu():
            subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)

        def test_idle():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "cpu_times", "-q")
    result.assert_outcomes(passed=2)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "CPU time per test" in line)
    rows = [re.match(r"\s*([\d.]+) s  (\S+)", line) for line in lines[start + 1 : start + 3]]
    assert [m.group(2).split("::")[1] for m in rows if m] == ["test_child_burns_cpu", "test_idle"]
    busy, idle = (float(m.group(1)) for m in rows if m)
    assert busy > idle and busy >= 0.05  # the child's CPU is counted
