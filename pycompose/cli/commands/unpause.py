"""``pycompose unpause``: unpause the service containers (cgroup freezer)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.commands._each import post_each

    return post_each(args, "unpause", "Unpaused")
