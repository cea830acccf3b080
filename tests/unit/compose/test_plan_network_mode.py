"""A service that joins another's network namespace is recreated with it."""

from __future__ import annotations

from pycompose.compose.model import FrozenDict, Project, Service
from pycompose.compose.plan import UpOptions, plan_up
from tests.unit.compose.test_plan import observed_from


def shared(vpn_env: str, mode: str = "service:vpn") -> Project:
    return Project(name="demo", working_dir="/w", services=FrozenDict({
        "vpn": Service(name="vpn", image="busybox", environment=FrozenDict({"E": vpn_env})),
        "web": Service(name="web", image="busybox", network_mode=mode),
        "zeta": Service(name="zeta", image="busybox"),
    }))


def test_recreating_the_namespace_owner_recreates_who_joins_it() -> None:
    before = observed_from(shared("1"))
    text = str(plan_up(shared("2"), before, UpOptions()))
    assert "vpn-1: create — recreate: environment.E changed" in text
    assert ("web-1: create — recreate: dependency vpn (network_mode: service:vpn) recreated"
            in text)
    assert "zeta-1: leave running" in text


def test_container_mode_naming_a_project_container() -> None:
    before = observed_from(shared("1", "container:demo-vpn-1"))
    text = str(plan_up(shared("2", "container:demo-vpn-1"), before, UpOptions()))
    assert "web-1: create — recreate: dependency vpn (network_mode: container:demo-vpn-1)" \
        in text


def test_unchanged_owner_leaves_them_running() -> None:
    text = str(plan_up(shared("1"), observed_from(shared("1")), UpOptions()))
    assert "recreate" not in text
