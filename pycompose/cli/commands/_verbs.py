"""Shared body of ``start``, ``stop`` and ``restart``: a streamed job on the project."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, *, timeout: bool) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    if timeout:
        parser.add_argument("-t", "--timeout", type=float, metavar="SECONDS",
                            help="Shutdown timeout")


def run(args: argparse.Namespace, verb: str) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import choose_mode, render_stream

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    body = {"services": args.services, "timeout": getattr(args, "timeout", None)}
    return render_stream(ec.stream(ec.client(), "POST", ec.path("projects", name, verb), body),
                         choose_mode(args.progress), command=verb, ansi=args.ansi,
                         project=name)
