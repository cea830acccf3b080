"""``pycompose push``: push the images of the project's services (as ``docker compose push``).

Every selected service with an ``image:`` name is pushed under that name (an
image built by ``pycompose build`` carries it). Services without ``image:``
are skipped with a note.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--ignore-push-failures", action="store_true",
                        help="Push what it can and ignores images with push failures")
    parser.add_argument("--include-deps", action="store_true",
                        help="Also push images of services declared as dependencies")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Push without printing progress information")


def run(args: argparse.Namespace) -> int:
    import trio

    from pycompose.cli.commands._registry import (
        Renderer,
        open_store,
        registry_config,
        report_failures,
        selected_services,
        use_tty,
        work_dir,
    )
    from pycompose.cli.project import load_project
    project = load_project(args, services=args.services)
    names = selected_services(project, args.services, args.include_deps)
    images: dict[str, str] = {}
    for name in sorted(names):
        svc = project.services[name]
        if not svc.image:
            if not args.quiet:
                print(f"{name} Skipped: no image name to push under", file=sys.stderr)
            continue
        images.setdefault(svc.image, name)
    store = open_store()
    config = registry_config()
    renderer = Renderer(tty=use_tty(args.progress), quiet=args.quiet)
    failures: list[tuple[str, Exception]] = []

    async def main() -> None:
        from pycompose.runtime.errors import ImageError
        from pycompose.runtime.registry import push_image
        from pycompose.runtime.registry.http import HttpClient

        async with HttpClient() as http:
            async def one(image: str, service: str) -> None:
                try:
                    await push_image(store, image, config=config, work_dir=work_dir(),
                                     progress=renderer.callback(service), http=http)
                    renderer.message(f"{service} Pushed")
                except ImageError as exc:
                    failures.append((service, exc))

            async with trio.open_nursery() as nursery:
                for image, service in sorted(images.items()):
                    nursery.start_soon(one, image, service)

    with renderer.running():
        trio.run(main)
    return report_failures(failures, ignore=args.ignore_push_failures, what="push")
