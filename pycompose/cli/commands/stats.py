"""``pycompose stats``: live CPU, memory and pids of the service containers."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--no-stream", action="store_true",
                        help="Print one snapshot (over about one second) and exit")
    parser.add_argument("--format", default="table", choices=["table", "json"])
    parser.add_argument("-a", "--all", action="store_true", help="(stopped ones show zeros)")


def _sample(c: Any, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from pycompose.cli import engine_client as ec
    from pycompose.client import APIError

    out = {}
    for i in items:
        try:
            out[i["Id"]] = c.get(ec.path("containers", i["Id"], "stats"))
        except APIError:
            continue
    return out


def _rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for cid, now in after.items():
        prev = before.get(cid)
        cpu = 0.0
        if prev and now["cpu_usage_ns"] is not None and prev["cpu_usage_ns"] is not None:
            wall = max(now["read"] - prev["read"], 1e-6)
            cpu = 100.0 * (now["cpu_usage_ns"] - prev["cpu_usage_ns"]) / 1e9 / wall
        mem, limit = now["memory_usage"] or 0, now["memory_limit"]
        rows.append({"ID": cid[:12], "Name": now["name"], "CPUPerc": f"{cpu:.2f}%",
                     "MemUsage": f"{_size(mem)} / {_size(limit) if limit else 'unlimited'}",
                     "MemPerc": f"{100.0 * mem / limit:.2f}%" if limit else "--",
                     "PIDs": str(now["pids"] if now["pids"] is not None else "--")})
    return sorted(rows, key=lambda r: r["Name"])


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n:.4g}TiB"


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(box=None, header_style="bold")
    for col in ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["ID"], r["Name"], r["CPUPerc"], r["MemUsage"], r["MemPerc"], r["PIDs"])
    return t


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pycompose.cli.commands._each import targets

    c, _, items = targets(args, all=False)
    console = Console(highlight=False)
    before = _sample(c, items)
    time.sleep(1.0)  # CPU % needs two readings; docker's --no-stream does the same
    after = _sample(c, items)
    rows = _rows(before, after)
    if args.no_stream or not sys.stdout.isatty() or args.format == "json":
        if args.format == "json":
            for r in rows:
                print(json.dumps(r))
        else:
            console.print(_table(rows))
        return 0
    from rich.live import Live

    try:
        with Live(_table(rows), console=console, auto_refresh=False) as live:
            while True:
                before = after
                time.sleep(1.0)
                _, _, items = targets(args, all=False)
                after = _sample(c, items)
                live.update(_table(_rows(before, after)), refresh=True)
    except KeyboardInterrupt:
        return 0
