"""Entry point: global options, lazy dispatch to one command module, error rendering."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from pycompose import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from typing import Any

# command name -> (module under pycompose.cli.commands, one-line help).
# A command module is imported only when that command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("version", "Show the pycompose version information"),
    "image": ("image", "Manage images: import, load, save, ls, inspect, rm, prune, tag"),
    "config": ("config", "Parse, resolve and render the compose file in canonical format"),
    "graph": ("graph", "Show the service dependency graph (tree, dot or mermaid)"),
    "engine": ("engine", "Run the pycompose engine daemon in the foreground"),
    "up": ("up", "Create and start containers"),
    "down": ("down", "Stop and remove containers, networks"),
    "ps": ("ps", "List containers"),
    "logs": ("logs", "View output from containers"),
    "exec": ("exec", "Execute a command in a running container"),
    "run": ("run", "Run a one-off command on a service"),
    "start": ("start", "Start services"),
    "stop": ("stop", "Stop services"),
    "restart": ("restart", "Restart service containers"),
    "kill": ("kill", "Force stop service containers"),
    "rm": ("rm", "Removes stopped service containers"),
    "pause": ("pause", "Pause services"),
    "unpause": ("unpause", "Unpause services"),
    "top": ("top", "Display the running processes"),
    "ls": ("ls", "List running compose projects"),
    "events": ("events", "Receive real time events from containers"),
    "wait": ("wait", "Block until containers of all (or specified) services stop"),
    "port": ("port", "Print the public port for a port binding"),
    "images": ("images", "List images used by the created containers"),
    "create": ("create", "Creates containers for a service"),
    "cp": ("cp", "Copy files/folders between a service container and the local filesystem"),
    "stats": ("stats", "Display a live stream of container resource usage statistics"),
    "pull": ("pull", "Pull service images"),
    "push": ("push", "Push service images"),
    "build": ("build", "Build or rebuild services"),
    "builder": ("builder", "Manage the build cache: prune, du"),
    "commit": ("commit", "Create a new image from a service container's changes"),
}

# Global options that take a value, so that the command can be found in argv
# without building every command's parser.
_VALUE_OPTIONS = {
    "-f", "--file", "-p", "--project-name", "--project-directory", "--env-file",
    "--profile", "--ansi", "--progress", "--parallel",
}


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
    g.add_argument("--ansi", choices=["never", "always", "auto"], default="auto",
                   help="Control when to print ANSI control characters")
    g.add_argument("--progress", choices=["auto", "tty", "plain", "quiet", "json"],
                   default="auto", help="Type of progress output")
    g.add_argument("--parallel", type=int, default=-1, metavar="N",
                   help="Maximum parallelism, -1 for unlimited")
    g.add_argument("--dry-run", action="store_true", help="Show what would be done, change nothing")
    g.add_argument("--debug", action="store_true", default=_env_debug(),
                   help="Show Python tracebacks for errors (also PYCOMPOSE_DEBUG=1)")


def _env_debug() -> bool:
    return os.environ.get("PYCOMPOSE_DEBUG", "") not in ("", "0", "false", "no")


def _find_command(argv: Sequence[str]) -> str | None:
    at = _command_index(argv)
    return None if at is None else argv[at]


def _command_index(argv: Sequence[str]) -> int | None:
    """Where the first word that is not an option (or an option's value) is."""
    skip = False
    for at, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token == "--":
            return None
        if token in _VALUE_OPTIONS:
            skip = True
            continue
        if token.startswith("-"):
            continue
        return at
    return None


def _load(command: str) -> ModuleType:
    module, _ = COMMANDS[command]
    return importlib.import_module(f"pycompose.cli.commands.{module}")


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
            module = _load(name)
            at = _command_index(argv)
            if hasattr(module, "SUBCOMMANDS") and at is not None:  # likewise one level
                module.add_arguments(p, _find_command(argv[at + 1:]))  # down: image pull
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


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the pycompose program itself, which ends when this returns
        try:
            return main(sys.argv[1:])
        finally:
            # Spare the interpreter's exit a collection over every object left (about
            # 25 ms after an image pull): at exit, nothing of ours needs collecting.
            gc.freeze()
    argv = list(argv)
    command = _find_command(argv)
    if command is not None and command not in COMMANDS:
        command = None  # argparse reports the unknown command
    parser = build_parser(command, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("pycompose: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place every error is rendered
        return report_error(exc, debug=args.debug)


def report_error(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` for a person: our own errors as their message, anything else as a bug."""
    from pycompose.errors import user_errors

    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    errors = _flatten(exc)
    for err in errors:
        if isinstance(err, user_errors()):
            print(f"error: {err}", file=sys.stderr)
        else:
            print(f"internal error: {type(err).__name__}: {err}", file=sys.stderr)
            if not debug:
                print("(run with --debug or PYCOMPOSE_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _flatten(sub)]
    return [exc]


if __name__ == "__main__":
    raise SystemExit(main())
