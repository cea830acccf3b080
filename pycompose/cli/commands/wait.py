"""``pycompose wait``: block until the service containers stop; print their exit codes."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="+", metavar="SERVICE")
    parser.add_argument("--down-project", action="store_true",
                        help="Drop the project when the first container stops")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._each import targets
    from pycompose.client import EngineClient

    c, name, items = targets(args)
    code = 0
    slow = EngineClient(c.paths, timeout=None)
    for i in items:
        status = slow.post(ec.path("containers", i["Id"], "wait"))["StatusCode"]
        print(status)
        code = code or status
        if args.down_project:
            for _ in ec.stream(c, "POST", ec.path("projects", name, "down"),
                               {"project": None, "options": {}}):
                pass
            break
    return int(code)
