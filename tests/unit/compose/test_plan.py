"""Plan golden tests: what `up` / `down` would do, one line per operation, with causes."""

from __future__ import annotations

import dataclasses

import pytest

from pycompose.compose.backend import Observed, ObservedContainer
from pycompose.compose.hashing import config_hash as H  # noqa: E402
from pycompose.compose.model import (
    Dependency,
    FrozenDict,
    Healthcheck,
    Project,
    Service,
    ServiceVolume,
    Volume,
)
from pycompose.compose.plan import (
    DownOptions,
    UnknownServiceError,
    UpOptions,
    describe_change,
    plan_down,
    plan_up,
    service_config,
)


def project(**services: Service) -> Project:
    return Project(name="demo", working_dir="/w", services=FrozenDict(services),
                   volumes=FrozenDict({"data": Volume(name="demo_data")}))


def stack(debug: str = "0", web_restart: bool = False) -> Project:
    return project(
        db=Service(name="db", image="busybox", healthcheck=Healthcheck(test=("CMD", "true")),
                   volumes=(ServiceVolume(type="volume", source="data", target="/data"),)),
        web=Service(name="web", image="busybox", environment=FrozenDict({"DEBUG": debug}),
                    depends_on=FrozenDict({"db": Dependency(condition="service_healthy",
                                                            restart=web_restart)})),
        worker=Service(name="worker", image="busybox",
                       depends_on=FrozenDict({"web": Dependency()}), scale=2),
    )


def observed_from(p: Project, *, state: str = "running", skip: tuple[str, ...] = (),
                  extra: tuple[ObservedContainer, ...] = ()) -> Observed:
    containers = []
    n = 0
    for name, s in sorted(p.services.items()):
        if name in skip:
            continue
        for i in range(1, s.replicas + 1):
            n += 1
            containers.append(ObservedContainer(
                id=f"id{n}", name=f"demo-{name}-{i}", service=name, number=i, state=state,
                config_hash=H(s), config=service_config(s)))
    return Observed(containers=(*containers, *extra), networks=frozenset({"default"}),
                    volumes=frozenset({"data"}))


def opts(**kw: object) -> UpOptions:
    return UpOptions(config_hash=H, **kw)  # type: ignore[arg-type]


def test_fresh_project() -> None:
    plan = plan_up(stack(), Observed(), opts())
    assert str(plan) == """\
network default: create — missing
volume data: create — missing
db-1: create — missing
db-1: start — missing
web-1: create — missing
web-1: start — missing
worker-1: create — missing
worker-1: start — missing
worker-2: create — missing
worker-2: start — missing"""
    assert plan.changes


def test_second_up_changes_nothing() -> None:
    p = stack()
    plan = plan_up(p, observed_from(p), opts())
    assert str(plan) == """\
db-1: leave running — unchanged
web-1: leave running — unchanged
worker-1: leave running — unchanged
worker-2: leave running — unchanged"""
    assert not plan.changes


def test_changed_service_is_recreated_with_the_reason() -> None:
    old = stack(debug="0")
    plan = plan_up(stack(debug="1"), observed_from(old), opts())
    assert str(plan) == """\
db-1: leave running — unchanged
web-1: stop — recreate: environment.DEBUG changed
web-1: remove — recreate: environment.DEBUG changed
web-1: create — recreate: environment.DEBUG changed
web-1: start — recreate: environment.DEBUG changed
worker-1: leave running — unchanged
worker-2: leave running — unchanged"""
    create = next(op for op in plan.operations() if op.action.value == "create")
    assert create.inherit_from == "id2"  # anonymous volumes follow the new container


def test_restart_true_recreates_dependents_of_a_recreated_service() -> None:
    old = stack(web_restart=True)
    new_db = dataclasses.replace(old.services["db"], user="1000")
    new = dataclasses.replace(old, services=FrozenDict({**old.services, "db": new_db}))
    text = str(plan_up(new, observed_from(old), opts()))
    assert "db-1: create — recreate: user changed" in text
    assert "web-1: create — recreate: dependency db recreated (depends_on restart: true)" \
        in text
    assert "worker-1: leave running — unchanged" in text  # plain depends_on: left alone


def test_force_and_no_recreate() -> None:
    old = stack(debug="0")
    forced = str(plan_up(old, observed_from(old), opts(force_recreate=True)))
    assert forced.count("— recreate: --force-recreate") == 4 * 4
    kept = str(plan_up(stack(debug="1"), observed_from(old), opts(no_recreate=True)))
    assert "web-1: leave running — changed, kept because of --no-recreate" in kept


def test_stopped_containers_are_started() -> None:
    p = stack()
    plan = plan_up(p, observed_from(p, state="exited"), opts(services=("db",)))
    assert str(plan) == "db-1: start — not running (exited)"


def test_scale_up_and_down() -> None:
    p = stack()
    up = str(plan_up(p, observed_from(p), opts(scale={"worker": 3}, services=("worker",),
                                                no_deps=True)))
    assert up == """\
worker-1: leave running — unchanged
worker-2: leave running — unchanged
worker-3: create — scale up to 3
worker-3: start — scale up to 3"""
    down = str(plan_up(p, observed_from(p), opts(scale={"worker": 1}, services=("worker",),
                                                  no_deps=True)))
    assert down == """\
worker-1: leave running — unchanged
worker-2: stop — scale down to 1
worker-2: remove — scale down to 1"""


def test_selected_services_bring_their_dependencies_unless_no_deps() -> None:
    p = stack()
    with_deps = plan_up(p, Observed(), opts(services=("web",)))
    assert with_deps.order == ("db", "web")
    alone = plan_up(p, Observed(), opts(services=("web",), no_deps=True))
    assert alone.order == ("web",)
    with pytest.raises(UnknownServiceError, match="no such service: nope"):
        plan_up(p, Observed(), opts(services=("nope",)))


def test_orphans_are_reported_or_removed() -> None:
    p = stack()
    orphan = ObservedContainer(id="o1", name="demo-old-1", service="old", number=1,
                               state="running", config_hash="x")
    obs = observed_from(p, extra=(orphan,))
    reported = plan_up(p, obs, opts())
    assert not reported.changes
    assert "warning: found orphan container demo-old-1" in str(reported)
    removed = str(plan_up(p, obs, opts(remove_orphans=True)))
    assert removed.endswith("demo-old-1: stop — orphan: service not in the project\n"
                            "demo-old-1: remove — orphan: service not in the project")


def test_down_goes_in_reverse_and_keeps_volumes_without_v() -> None:
    p = stack()
    plan = plan_down(p, "demo", observed_from(p), DownOptions())
    assert str(plan) == """\
demo-worker-1: stop — down
demo-worker-1: remove — down
demo-worker-2: stop — down
demo-worker-2: remove — down
demo-web-1: stop — down
demo-web-1: remove — down
demo-db-1: stop — down
demo-db-1: remove — down
network default: remove — down"""
    with_v = str(plan_down(p, "demo", observed_from(p), DownOptions(volumes=True)))
    assert with_v.endswith("network default: remove — down\nvolume data: remove — down -v")


def test_describe_change() -> None:
    assert describe_change({"a": 1, "b": {"c": 1}}, {"a": 1, "b": {"c": 2}}) == "b.c changed"
    assert describe_change({"a": 1}, {"a": 2, "x": 1, "y": 1, "z": 1}) \
        == "a, x, y and 1 more changed"
    assert describe_change(None, {"a": 1}) == "configuration changed"


def test_a_new_image_recreates_even_when_the_config_is_the_same() -> None:
    p = stack()
    obs = observed_from(p)
    obs = Observed(containers=tuple(dataclasses.replace(c, image_id="sha256:old")
                                    for c in obs.containers),
                   networks=obs.networks, volumes=obs.volumes)
    text = str(plan_up(p, obs, opts(image_ids={"web": "sha256:new", "db": "sha256:old"})))
    assert "web-1: create — recreate: image changed" in text
    assert "db-1: leave running — unchanged" in text
    kept = str(plan_up(p, obs, opts(image_ids={"web": "sha256:new"}, no_recreate=True)))
    assert "web-1: leave running" in kept
