"""Global CLI options + the process environment -> :class:`LoadOptions` (and a Project).

The one place where the CLI reads ``os.environ``, the current directory and
stdin for the loader; every command that needs the project goes through here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycompose.compose.loader import LoadOptions
    from pycompose.compose.model import Project


def load_options(args: argparse.Namespace, *, services: Sequence[str] = (),
                 interpolate: bool = True) -> LoadOptions:
    """Build loader options from the global options (``-f``, ``-p``, ``--profile`` ...)."""
    from pycompose.compose.loader import LoadOptions

    files = list(getattr(args, "files", None) or ())
    stdin = sys.stdin.read() if "-" in files else None
    return LoadOptions(
        working_dir=os.getcwd(),
        files=files,
        project_directory=getattr(args, "project_directory", None),
        project_name=getattr(args, "project_name", None),
        environ=dict(os.environ),
        env_files=list(getattr(args, "env_files", None) or ()),
        profiles=list(getattr(args, "profiles", None) or ()),
        services=list(services),
        interpolate=interpolate,
        stdin=stdin,
    )


def print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def load_project(args: argparse.Namespace, *, services: Sequence[str] = (),
                 warn: bool = True) -> Project:
    """Load the project named by the global options; warnings go to stderr."""
    from pycompose.compose.loader import load_project as _load

    project = _load(load_options(args, services=services))
    if warn:
        print_warnings(project.warnings)
    return project


def load_record(args: argparse.Namespace, *, services: Sequence[str] = (),
                warn: bool = True) -> dict[str, Any]:
    """The project as plain data (``serialize.project_to_record``'s shape), for commands
    that hand it to the engine without looking into it: the model is not built here."""
    from pycompose.compose.loader import load_record as _load

    record = _load(load_options(args, services=services))
    if warn:
        print_warnings(record["warnings"])
    return record
