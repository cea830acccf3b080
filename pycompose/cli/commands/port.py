"""``pycompose port``: the host address a service's container port is published on."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("private_port", type=int, metavar="PRIVATE_PORT")
    parser.add_argument("--protocol", default="tcp", choices=["tcp", "udp"])
    parser.add_argument("--index", type=int, default=1, help="Index of the container")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.errors import UsageError

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, [args.service])
    ctr = ec.service_container(ec.client(), name, args.service, args.index)
    for p in ctr.get("Publishers") or ():
        if p["TargetPort"] == args.private_port and p["Protocol"] == args.protocol:
            print(f"{p['URL']}:{p['PublishedPort']}")
            return 0
    raise UsageError(f"no port {args.private_port}/{args.protocol} published for "
                     f"{ctr['Name']}")
