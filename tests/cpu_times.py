"""A pytest plugin that reports each test's CPU time (this process and its waited-for children),
so the suite can be kept within its CPU budget (docs/testing.md). Off by default; on with
``-p cpu_times``: the terminal summary then lists the costliest tests and the total."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

SHOWN = 25
_rows: list[tuple[float, str]] = []


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def pytest_sessionstart() -> None:
    _rows.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    start = _cpu_seconds()
    yield
    _rows.append((_cpu_seconds() - start, item.nodeid))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _rows:
        return
    total = sum(seconds for seconds, _ in _rows)
    terminalreporter.section(f"CPU time per test: {total:.0f} s in all, the {SHOWN} costliest")
    for seconds, nodeid in sorted(_rows, reverse=True)[:SHOWN]:
        terminalreporter.write_line(f"{seconds:8.1f} s  {nodeid}")
