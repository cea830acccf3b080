"""The networkx dependency graph, cycles, selection, dot and mermaid output."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.errors import DependencyCycleError, SchemaError
from pycompose.compose.graph import (
    build_graph,
    select_services,
    start_order,
    to_dot,
    to_mermaid,
)
from pycompose.compose.model import Dependency, FrozenDict, Project, Service

from .loader_helpers import load

STACK = """
services:
  web:
    image: a
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started, required: false, restart: true}
  db: {image: pg}
  cache: {image: redis}
  sidecar: {image: s, network_mode: "service:web", volumes_from: [db]}
  worker: {image: w, links: ["cache:c"], ipc: "service:db", pid: "service:db"}
"""


def test_edges_and_attributes(tmp_path: Path) -> None:
    graph = build_graph(load(tmp_path, STACK))
    assert graph.edges["web", "db"] == {"kind": "depends_on", "condition": "service_healthy",
                                        "required": True, "restart": False}
    assert graph.edges["web", "cache"]["required"] is False
    assert graph.edges["web", "cache"]["restart"] is True
    assert graph.edges["sidecar", "web"]["kind"] == "network_mode"
    assert graph.edges["sidecar", "db"]["kind"] == "volumes_from"
    assert graph.edges["worker", "cache"]["kind"] == "links"
    assert graph.edges["worker", "db"]["kind"] in ("ipc", "pid")


def test_start_order(tmp_path: Path) -> None:
    order = start_order(build_graph(load(tmp_path, STACK)))
    assert order.index("db") < order.index("web") < order.index("sidecar")
    assert order.index("cache") < order.index("worker")
    assert order == start_order(build_graph(load(tmp_path, STACK)))


def test_select_pulls_dependencies(tmp_path: Path) -> None:
    graph = build_graph(load(tmp_path, STACK))
    assert select_services(graph, ["sidecar"]) == {"sidecar", "web", "db", "cache"}
    assert select_services(graph, ["db"]) == {"db"}


def svc(name: str, *deps: str) -> Service:
    return Service(name=name, image="x",
                   depends_on=FrozenDict((d, Dependency()) for d in deps))


def project(*services: Service) -> Project:
    return Project(name="p", working_dir="/", services=FrozenDict((s.name, s) for s in services))


def test_cycle_is_reported_with_path() -> None:
    with pytest.raises(DependencyCycleError) as info:
        build_graph(project(svc("a", "b"), svc("b", "c"), svc("c", "a")))
    assert "dependency cycle detected: a -> b -> c -> a" in str(info.value)


def test_disabled_required_dependency() -> None:
    p = Project(name="p", working_dir="/", services=FrozenDict({"web": svc("web", "db")}),
                disabled_services=FrozenDict({"db": Service(name="db", image="x",
                                                            profiles=("debug",))}))
    with pytest.raises(SchemaError, match=r'disabled by its profiles \(debug\)'):
        build_graph(p)


def test_dot_and_mermaid(tmp_path: Path) -> None:
    graph = build_graph(load(tmp_path, STACK))
    dot = to_dot(graph)
    assert dot.startswith('digraph "')
    assert '"web" -> "db" [label="service_healthy"];' in dot
    assert '"web" -> "cache" [label="service_started", style=dashed];' in dot
    mermaid = to_mermaid(graph)
    assert mermaid.startswith("flowchart LR\n")
    assert '["web"]' in mermaid
    assert "-.->|service_started|" in mermaid
