"""``pycompose create``: create the service containers without starting them."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--force-recreate", action="store_true")
    parser.add_argument("--no-recreate", action="store_true")
    parser.add_argument("--remove-orphans", action="store_true")
    parser.add_argument("--scale", action="append", default=[], metavar="SERVICE=NUM")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.commands import up

    for name, default in (("detach", True), ("wait", False), ("wait_timeout", None),
                          ("no_deps", False), ("no_start", True), ("timeout", None),
                          ("up_dry_run", False), ("abort_on_container_exit", False),
                          ("exit_code_from", None), ("pull", None)):
        setattr(args, name, default)
    return up.run(args)
