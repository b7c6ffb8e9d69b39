"""Execution: the stage registry, graph building (``run``), blockwise maps, Dask executors and progress."""
