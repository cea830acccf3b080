"""``pycompose run``: a one-off container for a service (dependencies started first);
its exit code is ours. Output is the caller's, live; with a terminal on both ends (and no
``-T``) the container gets a pseudo-TTY and the caller's keyboard; otherwise standard
input is passed through as a pipe and its end closes the container's stdin."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Run in the background, print the container name")
    parser.add_argument("--rm", action="store_true", help="Remove the container when it exits")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    parser.add_argument("--entrypoint", help="Override the entrypoint")
    parser.add_argument("--name", help="Name of the container")
    parser.add_argument("--no-deps", action="store_true", help="Don't start linked services")
    parser.add_argument("-u", "--user", help="Run as this user")
    parser.add_argument("-w", "--workdir", help="Working directory inside the container")
    parser.add_argument("--service-ports", action="store_true",
                        help="Publish the service's ports")
    parser.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true",
                        help="Disable pseudo-TTY allocation (by default a TTY is allocated "
                        "when stdin and stdout are terminals)")
    parser.add_argument("-v", "--volume", action="append", default=[],
                        metavar="SRC:DST[:ro]", help="Bind mount a path or mount a volume")
    parser.add_argument("-p", "--publish", action="append", default=[],
                        metavar="[IP:]HOST:CONTAINER", help="Publish a container port")


def _absolute(spec: str) -> str:
    """A relative bind source is relative to where the command runs (as with docker)."""
    import os

    src, sep, rest = spec.partition(":")
    if sep and src.startswith((".", "~")):
        return os.path.abspath(os.path.expanduser(src)) + sep + rest
    return spec


def run(args: argparse.Namespace) -> int:
    import shlex

    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import ProgressRenderer, choose_mode

    project = ec.load(args)
    ec.check_services(project, [args.service])
    options = {"service": args.service, "command": args.cmd or None,
               "entrypoint": shlex.split(args.entrypoint) if args.entrypoint is not None
               else None, "env": args.env, "name": args.name, "rm": args.rm,
               "detach": args.detach, "no_deps": args.no_deps, "user": args.user,
               "workdir": args.workdir, "service_ports": args.service_ports,
               "volumes": [_absolute(v) for v in args.volume], "publish": args.publish}
    mode = choose_mode(args.progress)
    renderer = ProgressRenderer("quiet" if mode == "json" else mode, command="run",
                                ansi=args.ansi, project=project.name)
    c = ec.client()
    body = {"project": ec.encode(project), "options": options}
    path = ec.path("projects", project.name, "run")
    if args.detach:
        result = None
        for msg in ec.stream(c, "POST", path, body):
            renderer.handle(msg)
            if msg["type"] == "result":
                result = msg
        code = renderer.close(report=False)
        if result is None or code != 0:
            return code or 1
        print(result.get("container", ""))
        return 0
    # Attached: the caller's stdin (a terminal gets a pseudo-TTY) and the output, live.
    import os

    stdin = sys.stdin.fileno() if sys.stdin is not None else None
    tty = not args.no_tty and stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    options["tty"] = tty
    # Input is always passed, as `docker compose run` does: a terminal's keys, or a pipe
    # whose end (EOF) ends the container's stdin (`echo x | pycompose run --rm tool cat`).
    options["interactive"] = stdin is not None
    if tty and stdin is not None:
        cols, rows = os.get_terminal_size(stdin)
        options["size"] = [rows, cols]
    final = c.attach(path, body, stdin=stdin,
                     stdout=sys.stdout.buffer,
                     stderr=sys.stderr.buffer, tty=tty, on_message=renderer.handle)
    renderer.handle(final)
    code = renderer.close(report=False)
    if code != 0:
        return code
    return int(final.get("exit_code", 0))
