"""``pycompose ps``: the project's containers."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all stopped containers too")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display IDs")
    parser.add_argument("--services", dest="list_services", action="store_true",
                        help="Display services")
    parser.add_argument("--status", action="append", default=[],
                        choices=["paused", "restarting", "removing", "running", "dead",
                                 "created", "exited"], help="Filter by status")
    parser.add_argument("--format", default="table", choices=["table", "json"])
    parser.add_argument("--no-trunc", action="store_true")


def _ports(item: dict[str, Any]) -> str:
    return ", ".join(f"{p.get('URL', '0.0.0.0')}:{p.get('PublishedPort')}->"
                     f"{p.get('TargetPort')}/{p.get('Protocol', 'tcp')}"
                     for p in item.get("Publishers") or ())


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    items = ec.containers(ec.client(), name, all=args.all or bool(args.status),
                          services=args.services)
    items = [i for i in items if i["Labels"].get("com.docker.compose.oneoff") != "True"
             or args.all]
    if args.status:
        items = [i for i in items if i["State"] in args.status]
    if args.list_services:
        for s in sorted({i["Service"] for i in items}):
            print(s)
        return 0
    if args.quiet:
        for i in items:
            print(i["Id"] if args.no_trunc else i["ID"])
        return 0
    if args.format == "json":
        print(json.dumps([{k: i[k] for k in ("ID", "Name", "Image", "Command", "Project",
                                             "Service", "Created", "State", "Status",
                                             "Health", "ExitCode", "Publishers")}
                          for i in items]))
        return 0
    rows = [(i["Name"], i["Image"], _cmd(i["Command"], args.no_trunc), i["Service"],
             _created(i["Created"]), i["Status"], _ports(i)) for i in items]
    headers = ("NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS")
    widths = [max(len(str(r[k])) for r in [headers, *rows]) for k in range(len(headers))]
    for r in [headers, *rows]:
        print("   ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cmd(cmd: str, no_trunc: bool) -> str:
    text = f'"{cmd}"'
    return text if no_trunc or len(text) <= 22 else text[:20] + '…"'


def _created(ts: int) -> str:
    import time

    from pycompose.engine.api import _ago

    return f"{_ago(time.time() - ts)} ago"
