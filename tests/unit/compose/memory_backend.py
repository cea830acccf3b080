"""An in-memory model of containers implementing the scheduler's Backend protocol.

This is a test double of pycompose's *own* protocol (the kernel-facing side is
tested for real elsewhere). Behaviour per service is scripted — how many
probes until healthy, when and how a container exits — and runs on trio's
clock, so with ``MockClock(autojump_threshold=0)`` timing logic finishes
instantly and deterministically. Every call is logged with the clock time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from pycompose.compose.backend import ConditionFailed, Observed, ObservedContainer
from pycompose.compose.hashing import config_hash
from pycompose.compose.model import Project, Service
from pycompose.compose.plan import HashFn, service_config


@dataclass
class Script:
    """How a service's containers behave once started."""

    healthy_after: int | None = None  # probes (1 s apart) until healthy; None: no healthcheck
    unhealthy: bool = False  # probes keep failing: unhealthy after `retries`
    retries: int = 3
    exit_after: float | None = None  # seconds after start until the process exits
    exit_code: int = 0
    fail_start: str | None = None  # start raises with this message
    fail_create: str | None = None


@dataclass
class FakeContainer:
    id: str
    name: str
    service: str
    number: int
    config_hash: str
    config: dict[str, object]
    state: str = "created"
    exit_code: int | None = None
    health: str = ""
    changed: trio.Event = field(default_factory=trio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class MemoryBackend:
    def __init__(self, scripts: dict[str, Script] | None = None,
                 hash_fn: HashFn = config_hash) -> None:
        self.scripts = scripts or {}
        self.hash_fn = hash_fn
        self.containers: dict[str, FakeContainer] = {}
        self.networks: set[str] = set()
        self.volumes: set[str] = set()
        self.log: list[tuple[float, str, str]] = []
        self._ids = itertools.count(1)
        self.active = 0
        self.max_active = 0
        self._nursery: trio.Nursery | None = None

    def bind(self, nursery: trio.Nursery) -> None:
        """Container lifetimes (exits, health) run as tasks in ``nursery``."""
        self._nursery = nursery

    def _record(self, what: str, subject: str) -> None:
        self.log.append((trio.current_time(), what, subject))

    async def _op(self, what: str, subject: str) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await trio.sleep(0.01)  # every effect takes a little time
            self._record(what, subject)
        finally:
            self.active -= 1

    def calls(self, what: str | None = None) -> list[str]:
        return [f"{w} {s}" if what is None else s for _, w, s in self.log
                if what is None or w == what]

    def time_of(self, what: str, subject: str) -> float:
        return next(t for t, w, s in self.log if w == what and s == subject)

    # ---- Backend

    async def observe(self, project: Project) -> Observed:
        return Observed(
            containers=tuple(ObservedContainer(
                id=c.id, name=c.name, service=c.service, number=c.number, state=c.state,
                config_hash=c.config_hash, config=c.config, exit_code=c.exit_code,
                health=c.health) for c in self.containers.values()),
            networks=frozenset(self.networks), volumes=frozenset(self.volumes))

    async def create_network(self, project: Project, key: str) -> None:
        await self._op("create-network", key)
        self.networks.add(key)

    async def remove_network(self, project: Project | None, key: str) -> None:
        await self._op("remove-network", key)
        self.networks.discard(key)

    async def create_volume(self, project: Project, key: str) -> None:
        await self._op("create-volume", key)
        self.volumes.add(key)

    async def remove_volume(self, project: Project | None, key: str) -> None:
        await self._op("remove-volume", key)
        self.volumes.discard(key)

    async def create_container(self, project: Project, service: Service, number: int, *,
                               name: str, inherit_from: str | None = None) -> str:
        script = self.scripts.get(service.name, Script())
        if script.fail_create:
            raise RuntimeError(script.fail_create)
        if any(c.name == name for c in self.containers.values()):
            raise RuntimeError(f"container name {name} is already in use")
        await self._op("create", name)
        cid = f"{next(self._ids):064x}"
        self.containers[cid] = FakeContainer(cid, name, service.name, number,
                                             self.hash_fn(service), service_config(service))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        script = self.scripts.get(c.service, Script())
        await self._op("start", c.name)
        if script.fail_start:
            raise RuntimeError(f"{c.name}: {script.fail_start}")
        c.state = "running"
        c.exit_code = None
        c.health = "starting" if script.healthy_after is not None or script.unhealthy else ""
        c.notify()
        assert self._nursery is not None, "call bind(nursery) first"
        self._nursery.start_soon(self._live, c, script)

    async def _live(self, c: FakeContainer, script: Script) -> None:
        async with trio.open_nursery() as nursery:
            if c.health:
                nursery.start_soon(self._probe, c, script)
            if script.exit_after is not None:
                await trio.sleep(script.exit_after)
                if c.state == "running":
                    c.state, c.exit_code = "exited", script.exit_code
                    self._record("exit", c.name)
                    c.notify()
                nursery.cancel_scope.cancel()

    async def _probe(self, c: FakeContainer, script: Script) -> None:
        failures = 0
        probes = 0
        while c.state == "running":
            await trio.sleep(1)
            probes += 1
            if not script.unhealthy and script.healthy_after is not None \
                    and probes >= script.healthy_after:
                c.health = "healthy"
                self._record("healthy", c.name)
                c.notify()
                return
            failures += 1
            if script.unhealthy and failures >= script.retries:
                c.health = "unhealthy"
                self._record("unhealthy", c.name)
                c.notify()
                return

    async def stop_container(self, container_id: str, grace: float | None = None) -> None:
        c = self.containers[container_id]
        await self._op("stop", c.name)
        c.state, c.exit_code = "exited", 137 if c.exit_code is None else c.exit_code
        c.notify()

    async def remove_container(self, container_id: str, *, volumes: bool = False) -> None:
        c = self.containers[container_id]
        await self._op("remove", c.name)
        del self.containers[container_id]
        c.notify()

    async def wait_healthy(self, container_id: str) -> None:
        c = self.containers[container_id]
        if not c.health:
            raise ConditionFailed(c.name, "has no healthcheck")
        while True:
            if c.health == "healthy":
                return
            if c.health == "unhealthy":
                raise ConditionFailed(c.name, "is unhealthy (last probe: exit 1, 'down')",
                                      details={"last_probe": "down"})
            if c.state != "running":
                raise ConditionFailed(c.name, f"exited with code {c.exit_code}")
            await c.changed.wait()

    async def wait_ready(self, container_id: str) -> None:
        c = self.containers[container_id]
        if c.health:
            await self.wait_healthy(container_id)
        elif c.state == "exited" and c.exit_code != 0:
            raise ConditionFailed(c.name, f"exited with code {c.exit_code}")

    async def failure_details(self, container_id: str) -> dict[str, object]:
        c = self.containers[container_id]
        return {"container": c.name, "exit_code": c.exit_code}

    async def wait_exit(self, container_id: str) -> int:
        c = self.containers[container_id]
        while c.state != "exited":
            await c.changed.wait()
        assert c.exit_code is not None
        return c.exit_code
