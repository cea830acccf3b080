"""Stopping the runtime supervisor of a benchmark's private state root."""

from __future__ import annotations

import contextlib
from pathlib import Path


def stop_supervisor(root: Path, instance: str) -> None:
    """Shut down the supervisor of ``root`` (it removes its empty cgroup parent).

    A no-op when it never started or is already gone.
    """
    import trio

    from pycompose.runtime.client import open_runtime

    async def shutdown() -> None:
        async with open_runtime(root, instance, autostart=False) as rt:
            await rt.shutdown()

    with contextlib.suppress(Exception):  # never started, or already gone
        trio.run(shutdown)
