"""Shared body of per-container verbs (kill, pause, unpause, rm, wait, top)."""

from __future__ import annotations

import argparse
from typing import Any


def targets(args: argparse.Namespace, *, all: bool = True) -> tuple[Any, str, list[Any]]:
    from pycompose.cli import engine_client as ec

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    c = ec.client()
    items = [i for i in ec.containers(c, name, all=all, services=args.services)
             if i["Labels"].get("com.docker.compose.oneoff") != "True"]
    return c, name, items


def post_each(args: argparse.Namespace, action: str, done: str, **params: Any) -> int:
    """POST ``/containers/{id}/{action}`` for each running service container.

    Prints ``Container NAME  <done>`` per container; an engine error on one
    container is reported and the others still get the request.
    """
    import sys

    from pycompose.cli import engine_client as ec
    from pycompose.client import APIError

    c, _, items = targets(args, all=False)
    code = 0
    for i in items:
        try:
            c.post(ec.path("containers", i["Id"], action), **params)
            print(f"Container {i['Name']}  {done}", file=sys.stderr)
        except APIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code
