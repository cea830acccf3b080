"""``pycompose restart``: restart the project's service containers (dependency order)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pycompose.cli.commands import _verbs

    _verbs.add_arguments(parser, timeout=True)


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.commands import _verbs

    return _verbs.run(args, "restart")
