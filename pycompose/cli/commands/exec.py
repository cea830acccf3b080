"""``pycompose exec``: run a command in a running service container; its exit code is ours.

Standard input is passed to the command and its output streamed back over an upgraded
connection; with a terminal on both ends (and no ``-T``) the command gets a pseudo-TTY
whose size follows the local one."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.add_argument("-d", "--detach", action="store_true", help="Run in the background")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VAL")
    parser.add_argument("-u", "--user", help="Run as this user")
    parser.add_argument("-w", "--workdir", help="Working directory inside the container")
    parser.add_argument("--index", type=int, default=1, help="Index of the container")
    parser.add_argument("-T", "--no-TTY", dest="no_tty", action="store_true",
                        help="Disable pseudo-TTY allocation (by default a TTY is allocated "
                        "when stdin and stdout are terminals)")
    parser.add_argument("--privileged", action="store_true")
    parser.add_argument("--no-stdin", action="store_true",
                        help="Do not pass standard input to the command")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.errors import UsageError

    if not args.cmd:
        raise UsageError("exec needs a command: pycompose exec SERVICE COMMAND [ARGS...]")
    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, [args.service])
    c = ec.client()
    ctr = ec.service_container(c, name, args.service, args.index)
    body = {"Cmd": args.cmd, "Env": args.env, "User": args.user,
            "WorkingDir": args.workdir, "Detach": args.detach, "Privileged": args.privileged}
    if not args.detach:
        # Interactive: stdin goes to the process (no pseudo-TTY yet, as with -T).
        tty = not args.no_tty and sys.stdin.isatty() and sys.stdout.isatty()
        if tty:
            cols, rows = os.get_terminal_size(sys.stdin.fileno())
            body.update(Tty=True, Size=[rows, cols])
        body["NoStdin"] = args.no_stdin
        result = c.attach(ec.path("containers", ctr["Id"], "exec"), body,
                          stdin=sys.stdin.fileno() if not args.no_stdin else None,
                          stdout=sys.stdout.buffer, stderr=sys.stderr.buffer, tty=tty)
        if result.get("error"):
            print(f"error: {ctr['Name']}: {result['error']}", file=sys.stderr)
        return int(result.get("exit_code", 126))
    code = 0
    for msg in c.stream("POST", ec.path("containers", ctr["Id"], "exec"), body):
        if "data" in msg:
            out = sys.stdout if msg["stream"] == "stdout" else sys.stderr
            out.write(msg["data"])
            out.flush()
        elif "error" in msg:
            print(f"error: {ctr['Name']}: {msg['error']}", file=sys.stderr)
            code = int(msg.get("exit_code", 126))
        elif "exit_code" in msg:
            code = int(msg["exit_code"])
    return code
