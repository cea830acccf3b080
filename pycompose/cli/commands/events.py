"""``pycompose events``: the project's container events as they happen."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--json", action="store_true", help="Output events as JSON lines")
    parser.add_argument("--since", help="Show events since this epoch time")
    parser.add_argument("--until", help="Stop at this epoch time")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec

    name = ec.project_name(args)
    c = ec.client()
    filters = {"label": [f"com.docker.compose.project={name}"], "type": ["container"]}
    try:
        for e in c.stream("GET", "/events", query={"filters": filters, "since": args.since,
                                                   "until": args.until}):
            attrs = e["Actor"]["Attributes"]
            service = attrs.get("com.docker.compose.service", "")
            if args.services and service not in args.services:
                continue
            if args.json:
                print(json.dumps({"time": e["timeNano"], "type": "container",
                                  "action": e["Action"], "id": e["Actor"]["ID"],
                                  "service": service, "attributes": attrs}))
            else:
                when = datetime.fromtimestamp(e["timeNano"] / 1e9, UTC).isoformat()
                extra = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())
                                  if not k.startswith("com.docker"))
                print(f"{when} container {e['Action']} {e['Actor']['ID']} ({extra})")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0
