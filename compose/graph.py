"""The service dependency graph (networkx), cycle detection and service selection.

Edges point from a service to what it needs (``web -> db`` when web depends
on db), with the attributes ``kind`` (``depends_on``, ``links``,
``network_mode``, ``volumes_from``, ``ipc``, ``pid``), ``condition``,
``required`` and ``restart``. ``up`` starts along ``G.reverse()`` (needed
services first); ``down`` stops along ``G``.

networkx is imported only by the functions that build a graph, so loading a
project (``pycompose config``) never pays for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import DependencyCycleError, SchemaError

if TYPE_CHECKING:
    import networkx as nx

    from .model import Project, Service

__all__ = [
    "build_graph",
    "dependency_edges",
    "select_services",
    "service_dependencies",
    "start_order",
    "to_dot",
    "to_mermaid",
]


def dependency_edges(service: Service) -> list[tuple[str, dict[str, Any]]]:
    """(needed service, edge attributes) for each reference in ``service``, sorted."""
    edges: dict[str, dict[str, Any]] = {}
    for name, dep in service.depends_on.items():
        edges[name] = {"kind": "depends_on", "condition": dep.condition,
                       "required": dep.required, "restart": dep.restart}

    def implied(name: str, kind: str) -> None:
        edges.setdefault(name, {"kind": kind, "condition": "service_started",
                                "required": True, "restart": False})

    for link in service.links:
        implied(link.split(":", 1)[0], "links")
    for kind in ("network_mode", "ipc", "pid", "uts"):
        value = getattr(service, kind)
        if isinstance(value, str) and value.startswith("service:"):
            implied(value[len("service:"):], kind)
    for vf in service.volumes_from:
        if vf.startswith("container:"):
            continue
        implied(vf.removeprefix("service:").split(":", 1)[0], "volumes_from")
    return sorted(edges.items())


def service_dependencies(service: Service) -> set[str]:
    return {name for name, _ in dependency_edges(service)}


def build_graph(project: Project) -> nx.DiGraph:
    """The DiGraph of the enabled services; raises on cycles and on required
    dependencies that are disabled by their profiles."""
    import networkx as nx

    graph = nx.DiGraph(name=project.name)
    graph.add_nodes_from(sorted(project.services))
    errors = []
    for name in sorted(project.services):
        for target, attrs in dependency_edges(project.services[name]):
            if target in project.services:
                graph.add_edge(name, target, **attrs)
            elif attrs["required"]:
                if target in project.disabled_services:
                    profiles = ", ".join(project.disabled_services[target].profiles)
                    msg = (f'needs service "{target}", which is disabled by its profiles '
                           f"({profiles}); enable one of them")
                else:
                    msg = f'needs undefined service "{target}"'
                errors.append(SchemaError(None, f"services.{name}.{attrs['kind']}", msg))
    if errors:
        raise errors[0]
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        names = [edge[0] for edge in cycle] + [cycle[-1][1]]
        raise DependencyCycleError(None, f"services.{names[0]}",
                                   f"dependency cycle detected: {' -> '.join(names)}")
    return graph


def select_services(graph: nx.DiGraph, names: Iterable[str]) -> set[str]:
    """The named services plus everything they need, transitively."""
    import networkx as nx

    selected: set[str] = set()
    for name in names:
        if name not in graph:
            raise SchemaError(None, None, f"no such service: {name}")
        selected.add(name)
        selected |= nx.descendants(graph, name)
    return selected


def start_order(graph: nx.DiGraph) -> list[str]:
    """A deterministic order in which every service comes after what it needs."""
    import networkx as nx

    return list(nx.lexicographical_topological_sort(graph.reverse(copy=False)))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: nx.DiGraph) -> str:
    """Graphviz text: ``web -> db [label="service_healthy"]``."""
    lines = [f"digraph {_quote(str(graph.graph.get('name') or 'project'))} {{",
             "  rankdir=LR;", "  node [shape=box];"]
    lines += [f"  {_quote(n)};" for n in sorted(graph.nodes)]
    for a, b in sorted(graph.edges):
        attrs = graph.edges[a, b]
        label = attrs["condition"] if attrs["kind"] == "depends_on" else attrs["kind"]
        style = "" if attrs["required"] else ", style=dashed"
        lines.append(f"  {_quote(a)} -> {_quote(b)} [label={_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: nx.DiGraph) -> str:
    """Mermaid flowchart text: ``web -->|service_healthy| db``."""
    ids = {n: f"s{i}" for i, n in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    lines += [f'  {ids[n]}["{n}"]' for n in sorted(graph.nodes)]
    for a, b in sorted(graph.edges):
        attrs = graph.edges[a, b]
        label = attrs["condition"] if attrs["kind"] == "depends_on" else attrs["kind"]
        arrow = "-->" if attrs["required"] else "-.->"
        lines.append(f"  {ids[a]} {arrow}|{label}| {ids[b]}")
    return "\n".join(lines) + "\n"
