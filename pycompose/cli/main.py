"""Entry point: lazy dispatch to one command module, error rendering.

argparse (with the ``re`` and ``enum`` it imports, ~7 ms) loads only when a command
needs it (``pycompose.cli.parser``): ``pycompose.cli.quick`` first recognises the few
commands whose request can go to the engine before that.
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import ModuleType

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

# The choices of the global --progress and --ansi options.
PROGRESS_MODES = ("auto", "tty", "plain", "quiet", "json")
ANSI_MODES = ("never", "always", "auto")

# Global options that take a value, so that the command can be found in argv
# without building every command's parser.
_VALUE_OPTIONS = {
    "-f", "--file", "-p", "--project-name", "--project-directory", "--env-file",
    "--profile", "--ansi", "--progress", "--parallel",
}


def env_debug() -> bool:
    return os.environ.get("PYCOMPOSE_DEBUG", "") not in ("", "0", "false", "no")


def find_command(argv: Sequence[str]) -> str | None:
    at = command_index(argv)
    return None if at is None else argv[at]


def command_index(argv: Sequence[str]) -> int | None:
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


def load_command(command: str) -> ModuleType:
    import importlib

    module, _ = COMMANDS[command]
    return importlib.import_module(f"pycompose.cli.commands.{module}")


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the pycompose program itself, which ends when this returns
        try:
            return main(sys.argv[1:])
        finally:
            # Spare the interpreter's exit a collection over every object left (about
            # 25 ms after an image pull): at exit, nothing of ours needs collecting.
            gc.freeze()
    argv = list(argv)
    from pycompose.cli import quick

    command_line = quick.recognise(argv)
    if command_line is not None:
        return run_reporting(command_line.run, debug=command_line.debug)
    from pycompose.cli.parser import build_parser

    command = find_command(argv)
    if command is not None and command not in COMMANDS:
        command = None  # argparse reports the unknown command
    parser = build_parser(command, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return run_reporting(lambda: load_command(args.command).run(args), debug=args.debug)


def run_reporting(command: Callable[[], int | None], *, debug: bool) -> int:
    """Run ``command``; its exit status, or an error rendered for a person."""
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        print("pycompose: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place every error is rendered
        return report_error(exc, debug=debug)


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
