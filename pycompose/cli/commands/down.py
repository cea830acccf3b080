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
    parser.add_argument("--rmi", choices=["local", "all"],
                        help="Remove images used by services: 'local' only those without a "
                        "custom tag (built for a service without image:), or 'all'")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import choose_mode, render_stream
    from pycompose.errors import UsageError

    project = ec.try_load(args)
    if args.rmi and project is None:
        raise UsageError("--rmi needs the compose file (which images the services use)")
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    options = {"volumes": args.volumes, "remove_orphans": args.remove_orphans,
               "timeout": args.timeout, "services": args.services, "dry_run": args.dry_run}
    body = {"project": ec.encode(project) if project is not None else None, "options": options}
    c = ec.client()
    code = render_stream(ec.stream(c, "POST", ec.path("projects", name, "down"), body),
                         choose_mode(args.progress), command="down", ansi=args.ansi,
                         project=name)
    if code == 0 and args.rmi and project is not None and not args.dry_run:
        code = _remove_images(project, args.rmi, args.services)
    return code


def _remove_images(project: object, which: str, services: list[str]) -> int:
    """``--rmi``: after the containers are gone, the images the services used."""
    import sys

    from pycompose.cli.commands._registry import open_store
    from pycompose.compose.model import Project
    from pycompose.runtime.errors import ImageError, ImageNotFoundError

    assert isinstance(project, Project)
    refs = set()
    for name, svc in project.services.items():
        if services and name not in services:
            continue
        if svc.image and which == "all":
            refs.add(svc.image)
        elif not svc.image and svc.build is not None:
            refs.add(f"{project.name}-{name}")
    store = open_store()
    code = 0
    for ref in sorted(refs):
        try:
            for line in store.remove(ref):
                print(line, file=sys.stderr)
        except ImageNotFoundError:
            continue
        except ImageError as exc:
            print(f"error: image {ref}: {exc}", file=sys.stderr)
            code = 1
    return code
