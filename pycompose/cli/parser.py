"""The command line's argparse parser: global options, one command's arguments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from pycompose import __version__
from pycompose.cli.main import (
    ANSI_MODES,
    COMMANDS,
    PROGRESS_MODES,
    command_index,
    env_debug,
    find_command,
    load_command,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from typing import Any


def _columns() -> int:
    """The terminal width as ``shutil.get_terminal_size`` finds it (``COLUMNS``, the
    terminal, else 80), without importing shutil (and the compression modules it
    pulls in) on every command's start."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with :class:`_Formatter` (subparsers inherit the class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("global options")
    g.add_argument("-f", "--file", dest="files", action="append", metavar="FILE",
                   help="Compose configuration file (repeatable; '-' reads stdin)")
    g.add_argument("-p", "--project-name", metavar="NAME", help="Project name")
    g.add_argument("--project-directory", metavar="DIR",
                   help="Alternate working directory (default: the first file's directory)")
    g.add_argument("--env-file", dest="env_files", action="append", metavar="FILE",
                   help="Alternate environment file (repeatable)")
    g.add_argument("--profile", dest="profiles", action="append", metavar="PROFILE",
                   help="Enable a profile (repeatable)")
    g.add_argument("--ansi", choices=ANSI_MODES, default="auto",
                   help="Control when to print ANSI control characters")
    g.add_argument("--progress", choices=PROGRESS_MODES,
                   default="auto", help="Type of progress output")
    g.add_argument("--parallel", type=int, default=-1, metavar="N",
                   help="Maximum parallelism, -1 for unlimited")
    g.add_argument("--dry-run", action="store_true", help="Show what would be done, change nothing")
    g.add_argument("--debug", action="store_true", default=env_debug(),
                   help="Show Python tracebacks for errors (also PYCOMPOSE_DEBUG=1)")


def build_parser(command: str | None, argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s own arguments are built (the others list their help)."""
    parser = _Parser(
        prog="pycompose",
        description="Define and run multi-container applications on pycompose's own runtime.",
    )
    parser.add_argument("-v", "--version", action="version",
                        version=f"pycompose version {__version__}")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    # With the command known, its parser alone is built: the listing of every command
    # is only printed by the top-level help (an argparse parser per command costs
    # about as much as a small command's work).
    names = [command] if command is not None else sorted(COMMANDS)
    for name in names:
        help_text = COMMANDS[name][1]
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = load_command(name)
            at = command_index(argv)
            if hasattr(module, "SUBCOMMANDS") and at is not None:  # likewise one level
                module.add_arguments(p, find_command(argv[at + 1:]))  # down: image pull
            else:
                module.add_arguments(p)
    return parser


Subcommands = dict[str, tuple[str, tuple[str, ...], Callable[[argparse.ArgumentParser], None]]]


def add_subcommands(parser: argparse.ArgumentParser, dest: str, table: Subcommands,
                    selected: str | None) -> None:
    """Subcommands of a command (``table``: name -> (help, aliases, add its arguments)).
    With the one on the command line known (``selected``), only its parser is built;
    otherwise (help, a typo) all of them, for argparse to list."""
    sub = parser.add_subparsers(dest=dest, metavar="SUBCOMMAND", required=True)
    chosen = {name for name, (_, aliases, _) in table.items()
              if selected == name or selected in aliases}
    for name, (help_text, aliases, add) in table.items():
        if not chosen or name in chosen:
            add(sub.add_parser(name, aliases=list(aliases), help=help_text))


