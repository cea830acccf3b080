"""``pycompose pull``: pull the images of the project's services (as ``docker compose pull``).

Services without ``image:`` are skipped (they are built); a service with both
``image:`` and ``build:`` that cannot be pulled gets a warning, as Docker
Compose does. The pulls run in the engine (``POST /images/create``, one
stream per image, all at once), as ``docker compose pull`` asks dockerd.
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
    from pycompose.cli.commands._registry import (
        PullStreams,
        Renderer,
        report_failures,
        selected_services,
        use_tty,
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
    renderer = Renderer(tty=use_tty(args.progress), quiet=args.quiet)
    failures: list[tuple[str, Exception]] = []
    with renderer.running(), PullStreams(renderer) as pulls:
        for image, (service, _) in sorted(jobs.items()):
            pulls.start(image, service, policy=args.policy)
        for image, result in pulls.results():
            service, buildable = jobs[image]
            if not isinstance(result, Exception):
                renderer.message(f"{service} Pulled")
                continue
            if buildable:
                print(f"warning: {service}: {result} (it will be built)", file=sys.stderr)
                continue
            failures.append((service, result))
    return report_failures(failures, ignore=args.ignore_pull_failures, what="pull")
