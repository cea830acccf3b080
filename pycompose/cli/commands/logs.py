"""``pycompose logs``: the logs of the project's services, merged in timestamp order."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from typing import Any

COLORS = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    parser.add_argument("-n", "--tail", default="all", metavar="N",
                        help="Number of lines from the end of each container's log")
    parser.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    parser.add_argument("--since", metavar="TIME", help="Only after TIME (RFC 3339 or epoch)")
    parser.add_argument("--until", metavar="TIME", help="Only before TIME")
    parser.add_argument("--no-color", action="store_true", help="Monochrome output")
    parser.add_argument("--no-log-prefix", action="store_true", help="No container prefix")
    parser.add_argument("--index", type=int, help="(accepted for compatibility)")


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def time_arg(value: str | None) -> str | None:
    """Docker's ``--since``/``--until``: RFC 3339, Unix seconds, or a duration before now
    (``42m``, ``1h30m``, ``10s``) -> what the engine takes (RFC 3339 or Unix seconds)."""
    if not value:
        return None
    m = _DURATION.match(value)
    if m and any(m.groups()):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return f"{time.time() - (h * 3600 + mi * 60 + s):.9f}"
    return value


class Printer:
    """``name  | line`` with one colour per container, names aligned."""

    def __init__(self, names: list[str], *, color: bool, prefix: bool, timestamps: bool
                 ) -> None:
        self.width = max((len(n) for n in names), default=0)
        self.color = color
        self.prefix = prefix
        self.timestamps = timestamps
        self._colors: dict[str, str] = {}

    def line(self, entry: dict[str, Any]) -> None:
        text = entry["log"]
        if not text.endswith("\n"):
            text += "\n"
        if self.timestamps:
            text = f"{entry['time']} {text}"
        if self.prefix:
            name = entry["container"]
            code = self._colors.setdefault(name, COLORS[len(self._colors) % len(COLORS)])
            head = f"{name:<{self.width}} | "
            if self.color:
                head = f"\x1b[{code}m{head}\x1b[0m"
            text = head + text
        sys.stdout.write(text)
        sys.stdout.flush()


def _printer(c: Any, project: str, args: argparse.Namespace) -> Printer:
    from pycompose.cli import engine_client as ec

    names = [i["Name"] for i in ec.containers(c, project, services=args.services)]
    return Printer(names, color=_color(args), prefix=not args.no_log_prefix,
                   timestamps=args.timestamps)


def _color(args: argparse.Namespace) -> bool:
    return bool(sys.stdout.isatty() and not args.no_color and args.ansi != "never"
                or args.ansi == "always")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, args.services)
    c = ec.client()
    printer = _printer(c, name, args)
    query = {"follow": args.follow, "tail": args.tail, "timestamps": args.timestamps,
             "since": time_arg(args.since), "until": time_arg(args.until),
             "services": ",".join(args.services) or None}
    try:
        for entry in c.stream("GET", ec.path("projects", name, "logs"), query=query):
            printer.line(entry)
    except KeyboardInterrupt:
        return 0
    return 0


def follow_until_interrupted(c: Any, project: str, args: argparse.Namespace, *,
                             attach: list[str] | None = None) -> int:
    """Attached ``up``: follow the logs of the services ``args.services`` (all when
    empty) and of ``attach`` until they stop, printing those of ``attach`` (default:
    all followed); Ctrl-C stops the project (a second one leaves)."""
    from pycompose.cli import engine_client as ec
    from pycompose.cli.render.progress import choose_mode, render_stream

    args.services = list(getattr(args, "services", []) or [])
    if args.services and attach:  # attached dependencies are followed too
        args.services += [s for s in attach if s not in args.services]
    args.no_color = getattr(args, "no_color", False)
    args.no_log_prefix = getattr(args, "no_log_prefix", False)
    args.timestamps = getattr(args, "timestamps", False)
    containers = ec.containers(c, project, services=args.services)
    shown = {i["Name"] for i in containers
             if attach is None or i["Service"] in attach}
    printer = Printer(sorted(shown), color=_color(args), prefix=not args.no_log_prefix,
                      timestamps=args.timestamps)
    print("Attaching to " + ", ".join(i["Name"] for i in containers if i["Name"] in shown),
          file=sys.stderr)
    abort = getattr(args, "abort_on_container_exit", False)
    try:
        for entry in c.stream("GET", ec.path("projects", project, "logs"),
                              query={"follow": True, "tail": "all",
                                     "stop_when": "any" if abort else "all",
                                     "services": ",".join(args.services) or None}):
            if entry["container"] in shown:
                printer.line(entry)
        if abort:
            stopped = [i for i in ec.containers(c, project, services=args.services)
                       if i["State"] == "exited"]
            render_stream(
                ec.stream(c, "POST", ec.path("projects", project, "stop"),
                          {"services": args.services,
                           "timeout": getattr(args, "timeout", None)}),
                choose_mode(args.progress), command="stop", ansi=args.ansi, project=project)
            source = getattr(args, "exit_code_from", None)
            pick = [i for i in stopped if i["Service"] == source] if source else stopped
            if source and not pick:
                pick = [i for i in ec.containers(c, project, services=[source])]
            return int(pick[0]["ExitCode"]) if pick else 0
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
        c.close()
        try:
            return render_stream(
                ec.stream(c, "POST", ec.path("projects", project, "stop"),
                          {"services": args.services,
                           "timeout": getattr(args, "timeout", None)}),
                choose_mode(args.progress), command="stop", ansi=args.ansi, project=project)
        except KeyboardInterrupt:
            # Second Ctrl-C: kill what still runs (the stop job then finds it stopped).
            c.close()
            for i in ec.containers(c, project, all=False, services=args.services):
                with contextlib.suppress(Exception):
                    c.post(ec.path("containers", i["Id"], "kill"), signal="SIGKILL")
            print("Killed", file=sys.stderr)
            return 130
    return 0
