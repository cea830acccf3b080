"""``pycompose version``."""

from __future__ import annotations

import argparse
import json
import platform

from pycompose import __version__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["pretty", "json"], default="pretty")
    parser.add_argument("--short", action="store_true", help="Show only the version number")


def run(args: argparse.Namespace) -> int:
    if args.short:
        print(__version__)
    elif args.format == "json":
        print(json.dumps({"version": __version__, "python": platform.python_version()}))
    else:
        print(f"pycompose version {__version__} (python {platform.python_version()})")
    return 0
