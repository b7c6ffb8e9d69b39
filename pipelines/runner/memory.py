"""Keeping a long run's resident memory flat: freed heap memory goes back to the operating system.

glibc keeps freed memory in its heaps and raises its mmap threshold as large buffers are freed,
so a process that upscales block after block creeps upwards in resident memory although it holds
no more data (measured here: +10% peak RSS per doubling of the image side on the threaded
executor). dask.distributed's workers avoid this by starting with ``MALLOC_TRIM_THRESHOLD_=65536``;
the threaded executor sets the same threshold in its own process with ``mallopt``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any

TRIM_THRESHOLD = 65536
"""Bytes of free memory at the top of a heap above which glibc returns it (dask.distributed's value)."""

_M_TRIM_THRESHOLD = -1


@functools.cache
def return_freed_memory() -> bool:
    """Make glibc return freed memory promptly (once per process); False where that is not glibc."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None
