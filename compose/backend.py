"""What the plan and the scheduler need from whoever runs containers: a small Protocol.

``compose/`` knows Compose and nothing about syscalls; the engine implements
:class:`Backend` with the runtime and the network library, and the unit tests
implement it with an in-memory model of containers. Everything the scheduler
learns about the world comes through :meth:`Backend.observe` (one snapshot)
and the ``wait_*`` methods (conditions reached, or an error that says why not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycompose.compose.errors import SchedulerError
from pycompose.compose.model import Project, Service

RUNNING_STATES = frozenset({"running", "paused", "restarting"})


@dataclass(frozen=True, kw_only=True)
class ObservedContainer:
    """One existing container of the project, as the backend sees it now."""

    id: str
    name: str
    service: str
    number: int
    state: str  # created | running | paused | restarting | exited | dead
    config_hash: str
    config: Mapping[str, Any] | None = None
    """The service configuration it was created from (plain data), to explain changes."""
    exit_code: int | None = None
    health: str = ""  # '' (no healthcheck) | starting | healthy | unhealthy
    oneoff: bool = False
    image_id: str = ""
    """The id of the image it was created from ('' when unknown)."""

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True, kw_only=True)
class Observed:
    """A snapshot of what exists for one project."""

    containers: tuple[ObservedContainer, ...] = ()
    networks: frozenset[str] = frozenset()
    """Keys (as in the Compose file) of the project's networks that exist."""
    volumes: frozenset[str] = frozenset()
    """Keys of the project's volumes that exist."""

    def of_service(self, service: str) -> list[ObservedContainer]:
        return sorted((c for c in self.containers if c.service == service and not c.oneoff),
                      key=lambda c: c.number)


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """One step of progress, for the CLI to render (``web-1``, ``Started``, ``...``)."""

    resource: str
    status: str
    text: str = ""
    service: str | None = None
    kind: str = "container"  # container | network | volume | service | project
    details: Mapping[str, Any] = field(default_factory=dict)


class ConditionFailed(SchedulerError):
    """A container did not reach the condition a dependent waits for; the message says why."""

    def __init__(self, container: str, message: str, *, details: Mapping[str, Any] | None = None
                 ) -> None:
        super().__init__(f"{container}: {message}")
        self.container = container
        self.reason = message
        self.details = dict(details or {})


class Backend(Protocol):
    """The effects a plan is made of, plus the waits the scheduler needs. Each call does one
    thing and raises (any ``Exception`` with a clear message) when it cannot."""

    async def observe(self, project: Project) -> Observed: ...

    async def create_network(self, project: Project, key: str) -> None: ...

    async def remove_network(self, project: Project | None, key: str) -> None: ...

    async def create_volume(self, project: Project, key: str) -> None: ...

    async def remove_volume(self, project: Project | None, key: str) -> None: ...

    async def create_container(self, project: Project, service: Service, number: int, *,
                               name: str, inherit_from: str | None = None) -> str:
        """Create (not start) a container; returns its id. ``inherit_from`` names the
        container it replaces, whose anonymous volumes the new one takes over."""
        ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, grace: float | None = None) -> None:
        """Stop signal, then SIGKILL after ``grace`` seconds (the service's own when None)."""
        ...

    async def remove_container(self, container_id: str, *, volumes: bool = False) -> None: ...

    async def wait_healthy(self, container_id: str) -> None:
        """Return once the container is healthy; raise :class:`ConditionFailed` when it turns
        unhealthy, exits, or has no healthcheck."""
        ...

    async def wait_ready(self, container_id: str) -> None:
        """``up --wait``: return once the container is healthy (with a healthcheck), running
        (without one), or exited 0 (a one-shot that finished); raise
        :class:`ConditionFailed` otherwise."""
        ...

    async def wait_exit(self, container_id: str) -> int:
        """Return the container's exit code once it has exited (at once if it already has)."""
        ...

    async def failure_details(self, container_id: str) -> Mapping[str, Any]:
        """What helps a person see why the container failed (last log lines ...)."""
        ...
