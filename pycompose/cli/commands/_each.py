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
