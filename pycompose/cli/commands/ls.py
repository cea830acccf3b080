"""``pycompose ls``: the projects the engine knows."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="Show stopped projects too")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display names")
    parser.add_argument("--format", default="table", choices=["table", "json"])


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec

    items = ec.client().get("/projects", all=args.all)
    if args.quiet:
        for p in items:
            print(p["Name"])
    elif args.format == "json":
        print(json.dumps([{k: p[k] for k in ("Name", "Status", "ConfigFiles")} for p in items]))
    else:
        rows = [("NAME", "STATUS", "CONFIG FILES")] + [
            (p["Name"], p["Status"], p["ConfigFiles"]) for p in items]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        for r in rows:
            print(f"{r[0]:<{w0}}   {r[1]:<{w1}}   {r[2]}".rstrip())
    return 0
