"""``pycompose kill``: send a signal (SIGKILL by default) to the service containers."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-s", "--signal", default="SIGKILL", help="Signal to send")
    parser.add_argument("--remove-orphans", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.commands._each import post_each

    return post_each(args, "kill", "Killed", signal=args.signal)
