"""``pycompose pull``: pull the images of the project's services (as ``docker compose pull``).

Services without ``image:`` are skipped (they are built); a service with both
``image:`` and ``build:`` that cannot be pulled gets a warning, as Docker
Compose does. Pulls run in parallel over one HTTP client.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--ignore-pull-failures", action="store_true",
                        help="Pull what it can and ignores images with pull failures")
    parser.add_argument("--ignore-buildable", action="store_true",
                        help="Ignore images that can be built")
    parser.add_argument("--include-deps", action="store_true",
                        help="Also pull services declared as dependencies")
    parser.add_argument("--policy", choices=["missing", "always"], default="always",
                        help="Apply pull policy (missing: only images not present)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Pull without printing progress information")


def run(args: argparse.Namespace) -> int:
    import trio

    from pycompose.cli.commands._registry import (
        Renderer,
        open_store,
        registry_config,
        selected_services,
        use_tty,
        work_dir,
    )
    from pycompose.cli.project import load_project

    project = load_project(args, services=args.services)
    names = selected_services(project, args.services, args.include_deps)
    jobs: dict[str, tuple[str, bool]] = {}  # image -> (service, buildable)
    for name in names:
        svc = project.services[name]
        if not svc.image:
            continue
        if svc.build is not None and args.ignore_buildable:
            continue
        jobs.setdefault(svc.image, (name, svc.build is not None))
    store = open_store()
    config = registry_config()
    renderer = Renderer(tty=use_tty(args), quiet=args.quiet)
    failures: list[tuple[str, Exception]] = []

    async def main() -> None:
        from pycompose.runtime.errors import ImageError
        from pycompose.runtime.registry import ensure_image, pull_image
        from pycompose.runtime.registry.http import HttpClient

        async with HttpClient() as http:
            async def one(image: str, service: str, buildable: bool) -> None:
                try:
                    if args.policy == "missing":
                        await ensure_image(store, image, "missing", config=config,
                                           work_dir=work_dir(),
                                           progress=renderer.callback(service))
                    else:
                        await pull_image(store, image, config=config, work_dir=work_dir(),
                                         progress=renderer.callback(service), http=http)
                    renderer.message(f"{service} Pulled")
                except ImageError as exc:
                    if buildable:
                        print(f"warning: {service}: {exc} (it will be built)", file=sys.stderr)
                        return
                    failures.append((service, exc))

            async with trio.open_nursery() as nursery:
                for image, (service, buildable) in sorted(jobs.items()):
                    nursery.start_soon(one, image, service, buildable)

    with renderer.running():
        trio.run(main)
    if failures:
        if args.ignore_pull_failures:
            for service, exc in failures:
                print(f"warning: {service}: {exc}", file=sys.stderr)
            return 0
        if len(failures) == 1:
            raise failures[0][1]
        raise ExceptionGroup("pull", [exc for _, exc in failures])
    return 0
