"""Running the two commands in child processes, optionally under a file size limit (a full disk)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = {"esrgan": "esrgan_plugin", "pipelines": "pipelines.cli"}


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def file_size_limit(nbytes: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` capping every file the child writes at ``nbytes`` (writes past it fail
    with EFBIG, as on a full disk; Python ignores SIGXFSZ, so the process is not killed)."""
    if nbytes is None:
        return None

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", MODULES[name], *args]


def run(
    name: str, *args: str, fsize: int | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``esrgan ARGS`` or ``pipelines ARGS`` to completion."""
    return subprocess.run(
        command(name, *args),
        capture_output=True,
        text=True,
        env=child_env(**env),
        preexec_fn=file_size_limit(fsize),
        cwd=cwd,
        timeout=600,
    )


def start(
    name: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``esrgan ARGS`` or ``pipelines ARGS`` without waiting."""
    return subprocess.Popen(
        command(name, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**(env or {})),
        cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *parts: str) -> str:
    """The single error line of a failed command, checked to mention every one of ``parts``."""
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]
