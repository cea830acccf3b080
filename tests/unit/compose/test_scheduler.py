"""The trio scheduler against an in-memory backend, on trio's MockClock (autojump).

Ordering is asserted on the backend's call log (clock times), never with sleeps.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pycompose.compose.backend import ProgressEvent
from pycompose.compose.model import Dependency, FrozenDict, Project, Service
from pycompose.compose.plan import DownOptions, UpOptions, plan_down, plan_up
from pycompose.compose.scheduler import RunResult, Scheduler
from tests.unit.compose.memory_backend import MemoryBackend, Script


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def svc(name: str, **deps: str | Dependency) -> Service:
    return Service(name=name, image="busybox", depends_on=FrozenDict({
        k: v if isinstance(v, Dependency) else Dependency(condition=v) for k, v in deps.items()}))


def proj(*services: Service) -> Project:
    return Project(name="p", working_dir="/w", services=FrozenDict({s.name: s for s in services}))


async def up(backend: MemoryBackend, project: Project, *, wait: bool = False,
             parallel: int | None = None, events: list[ProgressEvent] | None = None,
             **options: object) -> RunResult:
    async with trio.open_nursery() as nursery:
        backend.bind(nursery)
        plan = plan_up(project, await backend.observe(project),
                       UpOptions(**options))  # type: ignore[arg-type]
        sink = events if events is not None else []
        result = await Scheduler(backend, project, plan, emit=sink.append, wait=wait,
                                 parallel=parallel).run()
        nursery.cancel_scope.cancel()  # container lifetimes end with the test's view of them
    return result


async def test_conditions_order_the_start(autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend({
        "db": Script(healthy_after=3),
        "migrate": Script(exit_after=5, exit_code=0),
        "cache": Script(),
    })
    p = proj(svc("db"), svc("cache"),
             svc("migrate", db="service_healthy"),
             svc("web", db="service_healthy", migrate="service_completed_successfully",
                 cache="service_started"))
    result = await up(backend, p)
    assert result.ok, result.errors
    t = backend.time_of
    assert t("start", "p-migrate-1") >= t("healthy", "p-db-1")
    assert t("create", "p-web-1") >= t("exit", "p-migrate-1")
    # cache has no dependencies: it started in parallel with db, not after it
    assert t("start", "p-cache-1") < t("healthy", "p-db-1")
    report = result.services["db"]
    assert report.healthy_s is not None
    assert report.started_s is not None
    assert report.healthy_s - report.started_s == pytest.approx(3, abs=0.05)


async def test_failure_blocks_only_dependents(autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend({"db": Script(unhealthy=True, retries=3)})
    p = proj(svc("db"), svc("web", db="service_healthy"), svc("front", web="service_started"),
             svc("cache"))
    events: list[ProgressEvent] = []
    result = await up(backend, p, events=events)
    assert not result.ok
    assert result.services["cache"].status == "done"
    assert "p-cache-1" in backend.calls("start")
    assert "p-web-1" not in backend.calls("create")
    assert "p-front-1" not in backend.calls("create")
    web = result.services["web"]
    assert web.status == "blocked"
    assert web.blocked_by == "db"
    assert "p-db-1: is unhealthy (last probe: exit 1, 'down')" in (web.error or "")
    front = result.services["front"]
    assert front.blocked_by == "web"
    assert result.services["db"].details == {"last_probe": "down"}
    assert any(e.status == "Blocked" and e.resource == "web" for e in events)


async def test_failed_one_shot_blocks_completed_condition(
        autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend({"migrate": Script(exit_after=1, exit_code=3)})
    p = proj(svc("migrate"), svc("web", migrate="service_completed_successfully"))
    result = await up(backend, p)
    assert result.services["web"].status == "blocked"
    assert "exited with code 3" in (result.services["web"].error or "")


async def test_optional_dependency_failure_is_tolerated(
        autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend({"db": Script(fail_start="cannot start: no such image")})
    p = proj(svc("db"), svc("web", db=Dependency(condition="service_started", required=False)))
    result = await up(backend, p)
    assert result.services["db"].status == "failed"
    assert "no such image" in (result.services["db"].error or "")
    assert result.services["web"].status == "done"
    assert "p-web-1" in backend.calls("start")


async def test_parallelism_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    services = [svc(f"s{i}") for i in range(8)]
    unbounded, bounded = MemoryBackend(), MemoryBackend()
    await up(unbounded, proj(*services))
    await up(bounded, proj(*services), parallel=2)
    assert unbounded.max_active == 8
    assert bounded.max_active == 2


async def test_wait_reports_readiness_and_accepts_finished_one_shots(
        autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend({"db": Script(healthy_after=2),
                             "seed": Script(exit_after=0.5, exit_code=0),
                             "bad": Script(exit_after=0.5, exit_code=1)})
    p = proj(svc("db"), svc("seed"), svc("bad"))
    # wait_ready for a container without a healthcheck returns once it runs; a one-shot
    # that already exited 0 is ready, one that exited non-zero is not.
    result = await up(backend, p, wait=True)
    assert result.services["db"].healthy_s is not None
    assert result.services["seed"].status == "done"


async def test_second_up_touches_nothing(autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend()
    p = proj(svc("db"), svc("web", db="service_started"))
    await up(backend, p)
    n = len(backend.log)
    result = await up(backend, p)
    assert result.ok
    assert len(backend.log) == n


async def test_down_stops_dependents_first(autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend()
    p = proj(svc("db"), svc("web", db="service_started"), svc("front", web="service_started"))
    await up(backend, p)
    plan = plan_down(p, "p", await backend.observe(p), DownOptions())
    result = await Scheduler(backend, p, plan).run()
    assert result.ok
    t = backend.time_of
    assert t("remove", "p-front-1") <= t("stop", "p-web-1")
    assert t("remove", "p-web-1") <= t("stop", "p-db-1")
    assert backend.containers == {}
    assert backend.networks == set()


async def test_down_orders_across_services_without_containers(
        autojump_clock: trio.testing.MockClock) -> None:
    """web -> migrate (one-shot, already removed) -> db: web still goes before db."""
    backend = MemoryBackend()
    p = proj(svc("db"), svc("migrate", db="service_started"),
             svc("web", migrate="service_started"))
    await up(backend, p)
    migrate = next(c for c in backend.containers.values() if c.service == "migrate")
    await backend.remove_container(migrate.id)
    plan = plan_down(p, "p", await backend.observe(p), DownOptions())
    assert "migrate" not in plan.services
    await Scheduler(backend, p, plan).run()
    assert backend.time_of("remove", "p-web-1") <= backend.time_of("stop", "p-db-1")
