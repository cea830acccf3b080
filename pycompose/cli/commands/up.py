"""``pycompose up``: converge the project (create, recreate, start), then follow logs
unless ``-d``."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Detached mode: converge, then return")
    parser.add_argument("--wait", action="store_true",
                        help="Wait for services to be running/healthy (implies -d)")
    parser.add_argument("--wait-timeout", type=float, metavar="SECONDS",
                        help="Maximum time to wait for the project to be ready")
    parser.add_argument("--force-recreate", action="store_true",
                        help="Recreate containers even if nothing changed")
    parser.add_argument("--no-recreate", action="store_true",
                        help="Never recreate existing containers")
    parser.add_argument("--no-deps", action="store_true", help="Don't start linked services")
    parser.add_argument("--no-start", action="store_true", help="Create, don't start")
    parser.add_argument("--build", action="store_true",
                        help="Build images before starting containers")
    parser.add_argument("--no-build", action="store_true",
                        help="Don't build an image, even if it's missing")
    parser.add_argument("--pull", choices=["always", "missing", "never"],
                        help="Pull images before running (default: each service's "
                        "pull_policy, else missing)")
    parser.add_argument("--remove-orphans", action="store_true",
                        help="Remove containers of services not in the compose file")
    parser.add_argument("--scale", action="append", default=[], metavar="SERVICE=NUM",
                        help="Scale SERVICE to NUM containers (repeatable)")
    parser.add_argument("-t", "--timeout", type=float, metavar="SECONDS",
                        help="Shutdown timeout for containers being replaced or stopped")
    parser.add_argument("--dry-run", dest="up_dry_run", action="store_true",
                        help="Print the plan (one line per operation, with its cause) and "
                        "change nothing")
    parser.add_argument("--abort-on-container-exit", action="store_true",
                        help="Stop all containers if any container stops (attached mode)")
    parser.add_argument("--exit-code-from", metavar="SERVICE",
                        help="Return the exit code of SERVICE (implies "
                        "--abort-on-container-exit)")
    parser.add_argument("--attach", action="append", default=[], metavar="SERVICE",
                        help="Restrict the attached output to these services (repeatable)")
    parser.add_argument("--no-attach", action="append", default=[], metavar="SERVICE",
                        help="Do not attach (print the output of) these services (repeatable)")
    parser.add_argument("--attach-dependencies", action="store_true",
                        help="Also attach the output of the services' dependencies")
    parser.add_argument("--no-log-prefix", action="store_true")
    parser.add_argument("--no-color", action="store_true")
    parser.add_argument("--timestamps", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.errors import UsageError

    if args.exit_code_from:
        args.abort_on_container_exit = True
    if args.abort_on_container_exit and (args.detach or args.wait):
        raise UsageError("--abort-on-container-exit and -d/--wait are incompatible")
    if args.force_recreate and args.no_recreate:
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    scale = {}
    for item in args.scale:
        name, sep, num = item.partition("=")
        if not sep or not num.isdigit():
            raise UsageError(f"--scale {item!r}: use SERVICE=NUM")
        scale[name] = int(num)
    # The engine builds the model from this record; the CLI only looks at the names.
    record = ec.load_record(args)
    services = record["document"].get("services") or {}
    ec.check_services(None, [*args.services, *scale, *args.attach, *args.no_attach,
                             *([args.exit_code_from] if args.exit_code_from else [])],
                      known=list(services))
    if args.detach and (args.attach or args.no_attach or args.attach_dependencies):
        raise UsageError("--attach, --no-attach and --attach-dependencies need the "
                         "attached mode (not -d)")
    options = {
        "services": args.services, "no_deps": args.no_deps,
        "force_recreate": args.force_recreate, "no_recreate": args.no_recreate,
        "remove_orphans": args.remove_orphans, "no_start": args.no_start, "scale": scale,
        "wait": args.wait, "wait_timeout": args.wait_timeout, "timeout": args.timeout,
        "dry_run": args.dry_run or args.up_dry_run, "parallel": args.parallel,
        "pull": args.pull,
    }
    if not options["dry_run"] and any(s.get("build") for s in services.values()):
        from pycompose.compose.build import project_from_record

        _build(project_from_record(record), args)
    c = ec.client()
    if options["dry_run"]:
        return _dry_run(c, record, options, args.progress)
    from pycompose.cli.render.progress import choose_mode, render_stream

    name = record["name"]
    code = render_stream(
        ec.stream(c, "POST", ec.path("projects", name, "up"),
                  {"project": record, "options": options}),
        choose_mode(args.progress), command="up", ansi=args.ansi, project=name)
    if code != 0 or args.detach or args.wait or args.no_start:
        return code
    from pycompose.cli.commands.logs import follow_until_interrupted

    return follow_until_interrupted(c, name, args, attach=attached_services(services, args))


def attached_services(services: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The services whose output an attached ``up`` prints, as docker compose chooses them:
    ``--attach`` if given, else the services named (with their dependencies under
    ``--attach-dependencies``) or all; then without ``--no-attach``."""
    if args.attach:
        chosen = list(dict.fromkeys(args.attach))
    elif args.services:
        chosen = list(dict.fromkeys(args.services))
        if args.attach_dependencies:
            todo = list(chosen)
            while todo:
                deps = (services.get(todo.pop()) or {}).get("depends_on") or {}
                for dep in deps:
                    if dep not in chosen:
                        chosen.append(dep)
                        todo.append(dep)
    else:
        chosen = sorted(services)
    return [name for name in chosen if name not in set(args.no_attach)]


def _build(project: object, args: argparse.Namespace) -> None:
    """Services with ``build:``: build their image here (as docker compose builds on the
    client side) when it is missing, or always with ``--build``; never with ``--no-build``."""
    import sys

    from pycompose.compose.model import Project
    from pycompose.runtime.errors import ImageNotFoundError

    assert isinstance(project, Project)
    if getattr(args, "no_build", False):
        return
    from pycompose.cli.commands.build import image_name, service_build

    selected = set(args.services) or set(project.services)
    wanted = [n for n in sorted(selected) if project.services[n].build is not None]
    if not wanted:
        return
    from pycompose.cli.commands._registry import open_store, registry_config

    store = open_store()
    todo = []
    for name in wanted:
        if getattr(args, "build", False):
            todo.append(name)
            continue
        try:
            store.get(image_name(project, name))
        except ImageNotFoundError:
            todo.append(name)
    if not todo:
        return
    import trio

    from pycompose.paths import host_paths
    from pycompose.runtime.build import Builder

    paths = host_paths()
    quiet = args.progress in ("quiet", "json")

    def log(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    async def main() -> None:
        builder = Builder(store, paths.root, instance=paths.instance, log=log,
                          registry_config=registry_config())
        for name in todo:
            options = service_build(project, name)
            log(f"Building {name} ({options.tags[0]})")
            await builder.build(options)

    trio.run(main)


def _dry_run(c: object, record: dict[str, Any], options: dict[str, object],
            progress: str) -> int:
    import json

    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import choose_mode

    mode = choose_mode(progress)
    code = 0
    for msg in ec.stream(c, "POST", ec.path("projects", record["name"], "up"),  # type: ignore[arg-type]
                         {"project": record, "options": options}):
        if mode == "json":
            print(json.dumps(msg))
        elif msg["type"] == "plan":
            print(msg["text"] or "nothing to do")
            for w in msg.get("warnings") or ():
                print(f"warning: {w}")
        elif msg["type"] == "error":
            print(f"error: {msg['message']}")
            code = 1
    return code
