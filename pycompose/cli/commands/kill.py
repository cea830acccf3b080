"""``pycompose kill``: send a signal (SIGKILL by default) to the service containers."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-s", "--signal", default="SIGKILL", help="Signal to send")
    parser.add_argument("--remove-orphans", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._each import targets
    from pycompose.client import APIError

    c, _, items = targets(args, all=False)
    code = 0
    for i in items:
        try:
            c.post(ec.path("containers", i["Id"], "kill"), signal=args.signal)
            print(f"Container {i['Name']}  Killed", file=sys.stderr)
        except APIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code
