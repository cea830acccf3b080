"""Key paths and the path-pattern rule tables."""

from __future__ import annotations

from pycompose.compose.keypath import RuleTable, fmt
from pycompose.compose.profiles import apply_profiles, dependency_names


def test_fmt_shows_list_indexes() -> None:
    assert fmt(("services", "web", "ports", 1)) == "services.web.ports[1]"
    assert fmt(("services", "web", "volumes", 0, "bind")) == "services.web.volumes[0].bind"
    assert fmt(()) == ""


def test_rule_table_wildcards_and_indexes() -> None:
    table = RuleTable({"services.*.ports": "ports", "services.*.healthcheck.test": "test",
                       "networks.*": "net", "services.web.image": "exact"})
    assert table.find(("services", "web", "ports")) == "ports"
    assert table.find(("services", "api", "ports", 3)) == "ports"
    assert table.find(("services", "a", "healthcheck", "test")) == "test"
    assert table.find(("networks", "front")) == "net"
    assert table.find(("services", "web", "image")) == "exact"
    assert table.find(("services", "api", "image")) is None
    assert table.find(("services",)) is None
    assert len(table) == 4
    assert "networks.*" in table


def test_apply_profiles_direct() -> None:
    services = {"a": {}, "b": {"profiles": ["x"]}, "c": {"profiles": ["y"], "depends_on":
                                                          {"b": {}}}}
    on, off = apply_profiles(services, ["x"])
    assert sorted(on) == ["a", "b"]
    assert sorted(off) == ["c"]
    on, off = apply_profiles(services, [], ["c"])
    assert sorted(on) == ["a", "b", "c"]
    assert off == {}


def test_dependency_names() -> None:
    svc = {"depends_on": {"a": {}}, "links": ["b:alias"], "network_mode": "service:c",
           "ipc": "service:d", "volumes_from": ["e:ro", "container:f", "service:g"]}
    assert dependency_names(svc) == {"a", "b", "c", "d", "e", "g"}
