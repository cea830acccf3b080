"""The engine process: lock the state root, open the store, serve the API, stop on a signal.

``run(paths, ready_fd=...)`` is the whole life of one engine. Readiness is
reported by writing ``ready\\n`` to ``ready_fd`` (a pipe the starting CLI
waits on) only once the socket accepts connections, so a client never races
the bind. SIGTERM and SIGINT stop the engine gracefully: the listener closes,
in-flight requests are cancelled, the store is closed. Containers are not
stopped: they outlive the engine, and the next engine adopts them.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from pycompose import __version__
from pycompose.engine import lock
from pycompose.engine.bus import EventBus
from pycompose.engine.store import Store
from pycompose.paths import HostPaths

if TYPE_CHECKING:
    from pycompose.runtime.registry.http import HttpClient

log = logging.getLogger("pycompose.engine")

SHUTDOWN_GRACE = 30.0
"""Seconds a SIGTERM waits for running jobs before the engine stops anyway."""


class Engine:
    """What every request handler shares: paths, store, bus, and the engine's own nursery."""

    def __init__(self, paths: HostPaths, store: Store, bus: EventBus,
                 nursery: trio.Nursery) -> None:
        self.paths = paths
        self.store = store
        self.bus = bus
        self.nursery = nursery
        self.started_at = time.time()
        self.pid = os.getpid()
        self.version = __version__
        self.shutdown = trio.Event()
        self._project_locks: dict[str, trio.Lock] = {}
        self.services: dict[str, object] = {}
        """Optional parts attached at start (``projects``, ``runtime``); looked up by name."""
        self._registry_http: HttpClient | None = None

    def project_lock(self, name: str) -> trio.Lock:
        """Serialises changes to one project (two ``up`` at once); projects differ -> parallel."""
        return self._project_locks.setdefault(name, trio.Lock())

    def registry_http(self) -> HttpClient:
        """The HTTP client of every pull: keep-alive connections to registries and one TLS
        context (about 30 ms of CPU to load the CA store) for the engine's lifetime."""
        if self._registry_http is None:
            from pycompose.runtime.registry.http import HttpClient  # noqa: PLC0415

            self._registry_http = HttpClient()
        return self._registry_http

    async def aclose(self) -> None:
        if self._registry_http is not None:
            await self._registry_http.aclose()


def state_db(paths: HostPaths) -> Path:
    return paths.root / "state.db"


def log_file(paths: HostPaths) -> Path:
    return paths.root / "engine.log"


async def run(paths: HostPaths, *, ready_fd: int | None = None) -> None:
    """Run the engine until SIGTERM/SIGINT (or ``engine.shutdown`` is set)."""
    from pycompose.engine import api  # noqa: PLC0415 - keeps `pycompose engine --help` light
    from pycompose.engine.http import serve_unix  # noqa: PLC0415

    lock_fd = lock.acquire(paths.root)
    try:
        store = await Store.open(state_db(paths))
        try:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    engine = Engine(paths, store, EventBus(), nursery)
                    await api.attach_parts(engine)
                    router = api.build_router(engine)
                    await nursery.start(serve_unix, paths.socket, router)
                    log.info("engine %s (pid %d) listening on %s, state root %s",
                             __version__, engine.pid, paths.socket, paths.root)
                    engine.bus.emit("engine", "start", str(engine.pid), root=str(paths.root))
                    if ready_fd is not None:
                        _report_ready(ready_fd)
                    nursery.start_soon(_stop_on_signal, signals, engine)
                    await engine.shutdown.wait()
                    log.info("engine stopping")
                    manager = engine.services.get("projects")
                    if manager is not None:
                        # Jobs in flight finish (bounded), so no project is left half-done.
                        with trio.move_on_after(SHUTDOWN_GRACE) as grace:
                            await manager.wait_idle()  # type: ignore[attr-defined]
                        if grace.cancelled_caught:
                            log.warning("jobs still running after %ss; stopping anyway",
                                        SHUTDOWN_GRACE)
                    nursery.cancel_scope.cancel()
                    with trio.CancelScope(shield=True):
                        await engine.aclose()
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
    finally:
        os.close(lock_fd)
    log.info("engine stopped")


async def _stop_on_signal(signals: AsyncIterator[int], engine: Engine) -> None:
    async for signum in signals:
        log.info("received %s", signal.Signals(signum).name)
        engine.shutdown.set()
        return


def _report_ready(fd: int) -> None:
    try:
        os.write(fd, b"ready\n")
    except OSError:
        pass  # the starter went away; the engine still serves
    finally:
        os.close(fd)
