"""``pycompose graph``: the service dependency graph as a tree, Graphviz dot or Mermaid."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="Only these services and what they need")
    parser.add_argument("--format", choices=["tree", "dot", "mermaid"], default="tree",
                        help="tree (default, for the terminal), dot (Graphviz) or mermaid")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.project import load_project
    from pycompose.compose import graph as g

    project = load_project(args, services=args.services)
    graph = g.build_graph(project)
    if args.services:
        graph = graph.subgraph(sorted(g.select_services(graph, args.services))).copy()
        graph.graph["name"] = project.name
    if args.format == "dot":
        sys.stdout.write(g.to_dot(graph))
    elif args.format == "mermaid":
        sys.stdout.write(g.to_mermaid(graph))
    else:
        _print_tree(project.name, graph)
    return 0


def _label(graph: Any, a: str, b: str) -> str:
    attrs = graph.edges[a, b]
    text = attrs["condition"] if attrs["kind"] == "depends_on" else f"via {attrs['kind']}"
    if not attrs["required"]:
        text += ", optional"
    if attrs.get("restart"):
        text += ", restart"
    return text


def _print_tree(name: str, graph: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    console = Console(highlight=False)
    root = Tree(f"[bold]{escape(name)}[/bold]")

    def add(node: Tree, service: str, path: tuple[str, ...]) -> None:
        for dep in sorted(graph.successors(service)):
            child = node.add(f"{escape(dep)} [dim]({escape(_label(graph, service, dep))})[/dim]")
            if dep not in path:
                add(child, dep, (*path, dep))

    roots = sorted(n for n in graph.nodes if graph.in_degree(n) == 0) or sorted(graph.nodes)
    for service in roots:
        add(root.add(f"[bold]{escape(service)}[/bold]"), service, (service,))
    console.print(root)
