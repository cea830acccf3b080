"""``pycompose pause``: pause the service containers (cgroup freezer)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._each import targets
    from pycompose.client import APIError

    c, _, items = targets(args, all=False)
    code = 0
    for i in items:
        try:
            c.post(ec.path("containers", i["Id"], "pause"))
            print(f"Container {i['Name']}  Paused",
                  file=sys.stderr)
        except APIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code
