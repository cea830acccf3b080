"""Convergence, step three: execute a :class:`~pycompose.compose.plan.Plan` with trio.

One nursery owns the whole run, with one task per service. A service's task
first waits for each dependency to reach its condition — ``service_started``,
``service_healthy`` or ``service_completed_successfully`` — on that
dependency's :class:`trio.Event` (no levels, no polling), then runs its
containers' operation chains in parallel under one :class:`trio.CapacityLimiter`.
Conditions beyond "started" are watched only when some dependent (or
``wait``) needs them.

A failure is recorded on the failing service and wakes its waiters, which
fail in turn with "dependency X failed: <why>"; services that do not depend
on it carry on. ``down`` plans run over the reversed graph: a service stops
once every dependent has stopped.

The executor decides nothing: what to do is the plan; when is the graph.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from pycompose.compose.backend import Backend, ConditionFailed, ProgressEvent
from pycompose.compose.errors import SchedulerError
from pycompose.compose.model import Dependency, Project
from pycompose.compose.plan import Action, Chain, Operation, Plan, service_dependencies

Emit = Callable[[ProgressEvent], None]

STARTED = "service_started"
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"
READY = "ready"  # up --wait: healthy, or running without a healthcheck, or exited 0


@dataclass
class ServiceReport:
    """What happened to one service; times are seconds from the start of the run."""

    name: str
    status: str = "pending"  # pending | done | failed | blocked
    error: str | None = None
    blocked_by: str | None = None
    containers: list[str] = field(default_factory=list)
    created_s: float | None = None
    started_s: float | None = None
    healthy_s: float | None = None
    completed_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class RunResult:
    services: dict[str, ServiceReport]
    errors: list[str] = field(default_factory=list)
    """Failures outside any one service (networks, volumes, orphans)."""

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in ("done", "pending")
                                       for r in self.services.values())

    @property
    def failures(self) -> list[ServiceReport]:
        return [r for r in self.services.values() if r.status in ("failed", "blocked")]


class ConvergeError(SchedulerError):
    """Some services did not converge; ``result`` has the per-service reasons."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        lines = list(result.errors)
        for r in result.failures:
            lines.append(f"{r.name}: {r.error}")
        super().__init__("\n".join(lines))


class _DependencyFailed(Exception):
    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(reason)
        self.dependency = dependency
        self.reason = reason


class _Tracker:
    """The conditions one service has reached; each event is set when reached *or* failed."""

    def __init__(self) -> None:
        self.events = {c: trio.Event() for c in (STARTED, HEALTHY, COMPLETED, READY)}
        self.failures: dict[str, str] = {}
        self.done = trio.Event()  # down: this service is stopped (or gave up)
        self.containers: list[str] = []

    def reach(self, condition: str) -> None:
        self.events[condition].set()

    def fail(self, condition: str, reason: str) -> None:
        self.failures.setdefault(condition, reason)
        self.events[condition].set()

    def fail_all(self, reason: str) -> None:
        for c in self.events:
            self.fail(c, reason)

    async def wait(self, condition: str) -> None:
        await self.events[condition].wait()
        if condition in self.failures:
            raise ConditionFailed("", self.failures[condition])


class Scheduler:
    """Runs one plan against one backend. ``emit`` receives progress events (sync, must not
    block); ``parallel`` bounds concurrent operations (``None``: unbounded)."""

    def __init__(self, backend: Backend, project: Project, plan: Plan, *,
                 emit: Emit = lambda _e: None, parallel: int | None = None,
                 wait: bool = False, stop_timeout: float | None = None,
                 remove_volumes: bool = False) -> None:
        self.backend = backend
        self.project = project
        self.plan = plan
        self.emit = emit
        self.limiter = trio.CapacityLimiter(parallel if parallel and parallel > 0 else math.inf)
        self.wait = wait
        self.stop_timeout = stop_timeout
        self.remove_volumes = remove_volumes
        self.trackers = {name: _Tracker() for name in plan.services}
        self.reports = {name: ServiceReport(name) for name in plan.services}
        self.errors: list[str] = []
        self._t0 = 0.0

    # ---- public

    async def run(self) -> RunResult:
        self._t0 = trio.current_time()
        ok = await self._run_ops(self.plan.prepare)
        if ok:
            async with trio.open_nursery() as nursery:
                for name in self._service_order():
                    nursery.start_soon(self._down_service if self.plan.reverse
                                       else self._up_service, name)
            await self._run_ops(self.plan.cleanup)
        else:
            for r in self.reports.values():
                r.status, r.error = "blocked", "not started: " + "; ".join(self.errors)
        return RunResult(self.reports, self.errors)

    # ---- helpers

    def _now(self) -> float:
        return round(trio.current_time() - self._t0, 6)

    def _service_order(self) -> list[str]:
        ordered = [n for n in self.plan.order if n in self.plan.services]
        return ordered + sorted(set(self.plan.services) - set(ordered))

    def _deps(self, name: str) -> dict[str, Dependency]:
        """Dependencies that are part of this plan. Going down (``reverse``), a service not
        in the plan is looked through, so that ordering still holds across it."""
        out: dict[str, Dependency] = {}
        seen = {name}
        todo = [name]
        while todo:
            service = self.project.services.get(todo.pop())
            if service is None:
                continue
            for d, spec in service_dependencies(self.project, service).items():
                if d in seen:
                    continue
                seen.add(d)
                if d in self.plan.services:
                    out.setdefault(d, spec)
                elif self.plan.reverse:
                    todo.append(d)
        return out

    def _needed_conditions(self, name: str) -> set[str]:
        needed = set()
        for other in self.plan.services:
            spec = self._deps(other).get(name)
            if spec is not None:
                needed.add(spec.condition)
        if self.wait:
            needed.add(READY)
        return needed - {STARTED}

    async def _run_ops(self, ops: tuple[Operation, ...]) -> bool:
        ok = True
        for op in ops:
            try:
                async with self.limiter:
                    await self._apply(op, None)
            except Exception as exc:  # noqa: BLE001 - recorded and reported, not swallowed
                self.errors.append(f"{op.subject}: {op.action.value} failed: {exc}")
                self.emit(ProgressEvent(resource=op.subject, status="Error", text=str(exc),
                                        kind=op.subject.split(" ", 1)[0]))
                ok = False
        return ok

    async def _apply(self, op: Operation, cid: str | None) -> str | None:
        """Do one operation; returns the id of the container the chain now acts on."""
        b = self.backend
        kind = "network" if op.action in (Action.CREATE_NETWORK, Action.REMOVE_NETWORK) else \
            "volume" if op.action in (Action.CREATE_VOLUME, Action.REMOVE_VOLUME) else "container"
        subject = op.name or op.key or op.subject

        def ev(status: str, text: str = "") -> None:
            self.emit(ProgressEvent(resource=subject, status=status, text=text,
                                    service=op.service, kind=kind,
                                    details={"cause": op.cause}))

        target = cid or op.container_id
        match op.action:
            case Action.CREATE_NETWORK:
                ev("Creating")
                await b.create_network(self.project, op.key or "")
                ev("Created")
            case Action.CREATE_VOLUME:
                ev("Creating")
                await b.create_volume(self.project, op.key or "")
                ev("Created")
            case Action.REMOVE_NETWORK:
                ev("Removing")
                await b.remove_network(self.project, op.key or "")
                ev("Removed")
            case Action.REMOVE_VOLUME:
                ev("Removing")
                await b.remove_volume(self.project, op.key or "")
                ev("Removed")
            case Action.CREATE:
                assert op.service is not None
                assert op.number is not None
                assert op.name
                ev("Recreating" if op.inherit_from else "Creating")
                target = await b.create_container(
                    self.project, self.project.services[op.service], op.number,
                    name=op.name, inherit_from=op.inherit_from)
                ev("Recreated" if op.inherit_from else "Created")
            case Action.START:
                assert target is not None
                ev("Starting")
                await b.start_container(target)
                ev("Started")
            case Action.STOP:
                assert target is not None
                ev("Stopping")
                await b.stop_container(target, self.stop_timeout)
                ev("Stopped")
            case Action.REMOVE:
                assert target is not None
                ev("Removing")
                # A recreate keeps anonymous volumes for the new container; down -v does not.
                await b.remove_container(target, volumes=self.remove_volumes and self.plan.reverse)
                ev("Removed")
                target = None
            case Action.KEEP:
                ev("Running" if op.keep_state in ("running", "restarting", "paused")
                   else op.keep_state.capitalize() or "Unchanged", op.cause)
        return target

    async def _run_chain(self, chain: Chain, report: ServiceReport) -> str | None:
        cid: str | None = None
        for op in chain:
            async with self.limiter:
                cid = await self._apply(op, cid)
            if op.action is Action.CREATE and report.created_s is None:
                report.created_s = self._now()
        return cid

    # ---- up

    async def _up_service(self, name: str) -> None:
        tracker, report = self.trackers[name], self.reports[name]
        try:
            await self._wait_dependencies(name)
        except _DependencyFailed as exc:
            report.status, report.blocked_by = "blocked", exc.dependency
            report.error = f"not started: dependency {exc.dependency} failed: {exc.reason}"
            tracker.fail_all(f"dependency {exc.dependency} failed")
            self.emit(ProgressEvent(resource=name, status="Blocked", service=name,
                                    kind="service", text=report.error))
            return
        ids: list[str | None] = [None] * len(self.plan.services[name])

        async def one(i: int, chain: Chain) -> None:
            ids[i] = await self._run_chain(chain, report)

        errors: list[BaseException] = []
        try:
            async with trio.open_nursery() as nursery:
                for i, chain in enumerate(self.plan.services[name]):
                    nursery.start_soon(one, i, chain)
        except* Exception as group:
            errors = _leaves(group)
        if errors:
            reason = "; ".join(str(e) for e in errors)
            report.status, report.error = "failed", reason
            tracker.fail_all(reason)
            self.emit(ProgressEvent(resource=name, status="Error", service=name,
                                    kind="service", text=reason))
            return
        containers = [c for c in ids if c is not None]
        # A replica whose chain only removed (scale down) has no container any more.
        report.containers = tracker.containers = containers
        report.started_s = self._now()
        tracker.reach(STARTED)
        needed = self._needed_conditions(name)
        if not needed:
            report.status = "done"
            return
        async with trio.open_nursery() as nursery:
            for condition in sorted(needed):
                nursery.start_soon(self._watch, name, condition)
        report.status = "failed" if report.error else "done"

    async def _wait_dependencies(self, name: str) -> None:
        for dep, spec in sorted(self._deps(name).items()):
            self.emit(ProgressEvent(resource=name, status="Waiting", service=name,
                                    kind="service", text=f"for {dep} ({spec.condition})"))
            try:
                await self.trackers[dep].wait(spec.condition)
            except ConditionFailed as exc:
                if not spec.required:
                    continue
                raise _DependencyFailed(dep, exc.reason) from None

    async def _watch(self, name: str, condition: str) -> None:
        tracker, report, b = self.trackers[name], self.reports[name], self.backend
        failures: list[ConditionFailed] = []
        try:
            async with trio.open_nursery() as nursery:
                for cid in tracker.containers:
                    if condition == HEALTHY:
                        nursery.start_soon(b.wait_healthy, cid)
                    elif condition == READY:
                        nursery.start_soon(b.wait_ready, cid)
                    elif condition == COMPLETED:
                        nursery.start_soon(self._expect_success, name, cid)
        except* ConditionFailed as group:
            failures = [e for e in _leaves(group) if isinstance(e, ConditionFailed)]
        if failures:
            reason = "; ".join(str(e) for e in failures)
            for e in failures:
                report.details.update(e.details)
            tracker.fail(condition, reason)
            if report.error == reason:
                return  # already reported (another condition on the same container)
            report.error = reason
            self.emit(ProgressEvent(resource=name, status="Error", service=name,
                                    kind="service", text=reason,
                                    details={"condition": condition, **report.details}))
            return
        if condition == HEALTHY:
            report.healthy_s = report.healthy_s or self._now()
            self.emit(ProgressEvent(resource=name, status="Healthy", service=name,
                                    kind="service"))
        elif condition == COMPLETED:
            report.completed_s = self._now()
            self.emit(ProgressEvent(resource=name, status="Exited", service=name,
                                    kind="service", text="completed successfully"))
        elif condition == READY:
            report.healthy_s = report.healthy_s or self._now()
        tracker.reach(condition)

    async def _expect_success(self, name: str, cid: str) -> None:
        code = await self.backend.wait_exit(cid)
        if code != 0:
            details = dict(await self.backend.failure_details(cid))
            details.setdefault("exit_code", code)
            raise ConditionFailed(details.get("container", name), f"exited with code {code}",
                                  details=details)

    # ---- down

    async def _down_service(self, name: str) -> None:
        tracker, report = self.trackers[name], self.reports[name]
        dependents = [other for other in self.plan.services if name in self._deps(other)]
        for other in sorted(dependents):
            await self.trackers[other].done.wait()
        try:
            async with trio.open_nursery() as nursery:
                for chain in self.plan.services[name]:
                    nursery.start_soon(self._run_chain, chain, report)
            report.status = "done"
        except* Exception as group:
            report.status = "failed"
            report.error = "; ".join(str(e) for e in _leaves(group))
            self.emit(ProgressEvent(resource=name, status="Error", service=name,
                                    kind="service", text=report.error))
        finally:
            tracker.done.set()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


async def converge(backend: Backend, project: Project, plan: Plan,
                   **kwargs: Any) -> RunResult:
    """Run ``plan``; see :class:`Scheduler` for the keyword arguments."""
    return await Scheduler(backend, project, plan, **kwargs).run()


def readiness_report(result: RunResult) -> list[Mapping[str, Any]]:
    """Per service: times to created/running/healthy, for the end of ``up``."""
    return [r.to_json() for r in sorted(result.services.values(), key=lambda r: r.name)]
