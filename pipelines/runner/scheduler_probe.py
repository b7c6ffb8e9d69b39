"""Checking that an address is a Dask scheduler, handshake included, within a time limit.

``distributed.Client(address, timeout=...)`` bounds only the TCP connection: a peer that
accepts and then says nothing hangs its handshake forever, and one that speaks another
protocol (the scheduler's HTTP dashboard on 8787, given for 8786) has its first bytes read as a
frame length (``MemoryError: Unable to allocate 3.07 EiB``). :func:`check_scheduler` runs
Dask's own handshake under one deadline first and turns each of these into a one-line error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from pipelines.errors import PipelineError

PORT_HINT = "a scheduler listens on port 8786 by default; 8787 is its dashboard (HTTP)"


class SchedulerUnreachable(PipelineError):
    """Nothing at the address completed Dask's handshake in time (see :func:`check_scheduler`)."""


def check_scheduler(address: str, timeout: float) -> None:
    """Open one Dask comm to ``address`` (TCP connection and handshake) within ``timeout`` seconds.

    Returns once a Dask scheduler has answered; raises :class:`SchedulerUnreachable` naming the
    address otherwise. Runs on a thread of its own, so that it works whether or not the caller's
    thread already runs an event loop (a notebook).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scheduler-probe") as pool:
        failure = pool.submit(asyncio.run, _handshake(address, timeout)).result()
    if failure:
        raise SchedulerUnreachable(failure)


async def _handshake(address: str, timeout: float) -> str | None:
    """``None`` when a Dask handshake with ``address`` completed in time, else the error line."""
    from distributed.comm import CommClosedError, connect
    from distributed.security import Security

    # what a Client would use: TLS certificates from Dask's configuration for tls:// addresses
    connection_args = Security().get_connection_args("client")
    try:
        comm = await asyncio.wait_for(connect(address, timeout=timeout, **connection_args), timeout)
    except TimeoutError:
        return (
            f"no Dask scheduler answered at {address} within {timeout:g} s: nothing accepted the "
            f"connection, or a peer accepted it and never spoke Dask's protocol; is `dask "
            f"scheduler` running there? ({PORT_HINT})"
        )
    except CommClosedError:
        return (
            f"the peer at {address} closed the connection during Dask's handshake: "
            f"not a Dask scheduler? ({PORT_HINT})"
        )
    except OSError as exc:
        return (
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
            f"({' '.join(str(exc).split())}); is `dask scheduler` running there?"
        )
    except Exception as exc:  # noqa: BLE001  any reply that is not Dask's frames (HTTP: MemoryError)
        return (
            f"the peer at {address} answered, but not in Dask's protocol "
            f"({type(exc).__name__}): an HTTP server? ({PORT_HINT})"
        )
    await comm.close()
    return None
