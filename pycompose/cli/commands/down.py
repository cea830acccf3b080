"""``pycompose down``: stop and remove containers (dependents first), networks, and with
``-v`` volumes."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-v", "--volumes", action="store_true",
                        help="Remove named volumes and anonymous volumes")
    parser.add_argument("--remove-orphans", action="store_true",
                        help="Remove containers of services not in the compose file")
    parser.add_argument("-t", "--timeout", type=float, metavar="SECONDS",
                        help="Shutdown timeout")
    parser.add_argument("--rmi", choices=["local", "all"], help="(not supported yet)")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import choose_mode, render_stream
    from pycompose.errors import UsageError

    if args.rmi:
        raise UsageError("--rmi is not supported yet")
    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    options = {"volumes": args.volumes, "remove_orphans": args.remove_orphans,
               "timeout": args.timeout, "services": args.services, "dry_run": args.dry_run}
    body = {"project": ec.encode(project) if project is not None else None, "options": options}
    c = ec.client()
    return render_stream(ec.stream(c, "POST", ec.path("projects", name, "down"), body),
                         choose_mode(args.progress), command="down", ansi=args.ansi,
                         project=name)
