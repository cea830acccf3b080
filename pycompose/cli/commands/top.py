"""``pycompose top``: the processes of each running service container."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._each import targets

    c, _, items = targets(args, all=False)
    for n, i in enumerate(items):
        top = c.get(ec.path("containers", i["Id"], "top"))
        rows = [top["Titles"], *top["Processes"]]
        widths = [max(len(r[k]) for r in rows) for k in range(len(top["Titles"]) - 1)]
        if n:
            print()
        print(i["Name"])
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True))
                  + "   " + r[-1])
    return 0
