"""``pycompose rm``: remove stopped service containers (``-s`` stops them first)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-f", "--force", action="store_true", help="Don't ask to confirm")
    parser.add_argument("-s", "--stop", action="store_true", help="Stop containers first")
    parser.add_argument("-v", "--volumes", action="store_true",
                        help="Remove anonymous volumes attached to the containers")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._each import targets
    from pycompose.client import APIError

    c, name, items = targets(args)
    if args.stop:
        for msg in ec.stream(c, "POST", ec.path("projects", name, "stop"),
                             {"services": args.services}):
            if msg.get("type") == "error":
                print(f"error: {msg['message']}", file=sys.stderr)
        items = targets(args)[2]
    running = [i for i in items if i["State"] in ("running", "paused", "restarting")]
    stopped = [i for i in items if i not in running]
    for i in running:
        print(f"warning: {i['Name']} is {i['State']}; stop it first or use -s", file=sys.stderr)
    if not stopped:
        print("No stopped containers", file=sys.stderr)
        return 0
    if not args.force and sys.stdin.isatty():
        answer = input("Going to remove " + ", ".join(i["Name"] for i in stopped)
                       + "\n? Are you sure? [yN] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    code = 0
    for i in stopped:
        try:
            c.request("DELETE", ec.path("containers", i["Id"]), query={"v": args.volumes})
            print(f"Container {i['Name']}  Removed", file=sys.stderr)
        except APIError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 1
    return code
