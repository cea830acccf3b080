"""Progress of ``up``/``down``/``start``/``stop``, and the readiness report that ends them.

Modes (``--progress``): ``tty`` redraws one line per resource with rich,
``plain`` prints one line per event, ``json`` copies the engine's messages to
stdout, ``quiet`` prints only errors. ``auto`` is ``tty`` when stderr is a
terminal. Progress goes to stderr (as docker compose does), so stdout stays
free for data.

A failure explains itself in one place: which service, what failed, the last
probe outputs and log lines, what was not started because of it, and the
command that shows more.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

KIND_LABEL = {"container": "Container", "network": "Network", "volume": "Volume",
              "service": "Service"}
DONE = {"Created", "Started", "Running", "Stopped", "Removed", "Healthy", "Recreated",
        "Exited", "Unchanged"}
FAILED = {"Error", "Blocked"}


def choose_mode(progress: str, stream: IO[str] | None = None) -> str:
    stream = stream or sys.stderr
    if progress != "auto":
        return progress
    return "tty" if stream.isatty() else "plain"


def _console(stream: IO[str], ansi: str = "auto") -> Any:
    from rich.console import Console

    force = {"always": True, "never": False}.get(ansi)
    return Console(file=stream, force_terminal=force, no_color=ansi == "never",
                   highlight=False, soft_wrap=True)


class ProgressRenderer:
    """Feed it the engine's messages (``handle``); ``close`` returns the exit code."""

    def __init__(self, mode: str, *, out: IO[str] | None = None, err: IO[str] | None = None,
                 ansi: str = "auto", command: str = "up", project: str = "") -> None:
        self.mode = mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.command = command
        self.project = project
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._rows: dict[str, tuple[str, str, str]] = {}  # resource -> (kind, status, text)
        self._since: dict[str, float] = {}  # resource -> when its first event came
        self._took: dict[str, float] = {}  # resource -> seconds, once it is done
        self._order: list[str] = []
        self._live: Any = None
        self._console: Any = None
        if mode == "tty":
            from rich.live import Live

            self._console = _console(self.err, ansi)
            self._live = Live(console=self._console, auto_refresh=False, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    # ---- events

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if self.mode == "json":
            print(json.dumps(msg), file=self.out, flush=True)
        if kind == "plan":
            for warning in msg.get("warnings") or ():
                self._line(f"warning: {warning}", style="yellow")
        elif kind == "progress":
            self._progress(msg)
        elif kind == "result":
            self.result = msg
        elif kind == "error":
            self.error = msg.get("message", "unknown error")

    def _progress(self, msg: dict[str, Any]) -> None:
        resource, status, text = msg["resource"], msg["status"], msg.get("text") or ""
        kind = msg.get("kind", "container")
        if kind == "service" and status == "Waiting":
            if self.mode == "plain":
                self._line(f"Service {resource}  Waiting {text}")
            return
        if self.mode == "plain":
            label = KIND_LABEL.get(kind, kind.capitalize())
            self._line(f"{label} {resource}  {status}" + (f"  {text}" if text and status
                                                          in FAILED else ""))
            return
        if self.mode == "tty":
            now = time.monotonic()
            if resource not in self._rows:
                self._order.append(resource)
                self._since[resource] = now
            self._rows[resource] = (kind, status, text)
            if status in DONE or status in FAILED:
                self._took[resource] = now - self._since[resource]
            else:
                self._took.pop(resource, None)
            self._refresh()

    def _refresh(self) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        for resource in self._order:
            kind, status, text = self._rows[resource]
            mark = ("✔", "green") if status in DONE else ("✘", "red") if status in FAILED \
                else ("⠿", "blue")
            took = self._took.get(resource)
            table.add_row(Text(mark[0], style=mark[1]),
                          Text(KIND_LABEL.get(kind, kind.capitalize())),
                          Text(resource, style="bold"),
                          Text(status, style=mark[1] if mark[1] != "blue" else ""),
                          Text(f"{took:.1f}s" if took is not None else "", style="dim"),
                          Text(text if status in FAILED else "", style="red"))
        self._live.update(table, refresh=True)

    def _line(self, text: str, style: str = "") -> None:
        if self.mode == "quiet" and not style.startswith("red"):
            return
        if self.mode == "json":
            return
        if self._console is not None:
            self._console.print(text, style=style or None, markup=False)
        else:
            print(text, file=self.err, flush=True)

    # ---- end

    def close(self, *, report: bool = True) -> int:
        if self._live is not None:
            self._live.stop()
        if self.error is not None:
            if self.mode != "json":
                print(f"error: {self.error}", file=self.err)
            return 1
        if self.result is None:
            if self.mode != "json":
                print("error: the engine ended the stream without a result", file=self.err)
            return 1
        if self.mode != "json":
            self._report(self.result, report)
        return 0 if self.result.get("ok") else 1

    def _report(self, result: dict[str, Any], readiness: bool) -> None:
        write = self._writer()
        for err in result.get("errors") or ():
            write(f"error: {err}", "red")
        services = result.get("services") or []
        failed = [s for s in services if s["status"] == "failed"]
        blocked = [s for s in services if s["status"] == "blocked"]
        for s in failed:
            write(f"error: service {s['name']} failed: {s['error']}", "red")
            details = s.get("details") or {}
            probes = [p.strip() for p in details.get("probes") or () if p and p.strip()]
            if probes:
                write("  last health probe output:", "")
                for p in probes[-3:]:
                    for line in p.splitlines()[-3:]:
                        write(f"    {line}", "dim")
            tail = details.get("log_tail") or []
            if tail:
                write(f"  last log lines of {details.get('container', s['name'])}:", "")
                for line in tail:
                    write(f"    {line}", "dim")
            dependents = [b["name"] for b in blocked]
            if dependents:
                write(f"  not started because of it: {', '.join(dependents)}", "")
            write(f"  see more: pycompose logs {s['name']}", "")
        for s in blocked:
            if not failed:
                write(f"error: service {s['name']}: {s['error']}", "red")
        if readiness and self.mode != "quiet" and services and result.get("ok") \
                and self.command == "up" and result.get("changes", True):
            rows = [s for s in services if s.get("started_s") is not None]
            if rows:
                write("Ready:", "")
                for s in rows:
                    parts = [f"created {s['created_s']:.2f}s" if s.get("created_s") is not None
                             else "already there",
                             f"running {s['started_s']:.2f}s"]
                    if s.get("healthy_s") is not None and s.get("healthy_s") != s.get(
                            "started_s"):
                        parts.append(f"healthy {s['healthy_s']:.2f}s")
                    if s.get("completed_s") is not None:
                        parts.append(f"completed {s['completed_s']:.2f}s")
                    write(f"  {s['name']:<20} " + ", ".join(parts), "")
        if self.command == "up" and result.get("ok") and not result.get("changes", True) \
                and self.mode != "quiet":
            write("Nothing to do: the project is up to date.", "")

    def _writer(self) -> Any:
        if self._console is not None:
            console = self._console

            def write(text: str, style: str) -> None:
                console.print(text, style=style or None, markup=False)
        else:
            def write(text: str, style: str) -> None:
                if self.mode == "quiet" and not text.startswith("error"):
                    return
                print(text, file=self.err)
        return write


def render_stream(messages: Iterable[dict[str, Any]], mode: str, *, command: str,
                  ansi: str = "auto", project: str = "") -> int:
    """Render a whole job stream; Ctrl-C stops rendering (the engine finishes the job)."""
    renderer = ProgressRenderer(mode, ansi=ansi, command=command, project=project)
    try:
        for msg in messages:
            renderer.handle(msg)
    except KeyboardInterrupt:
        renderer.close(report=False)
        raise
    return renderer.close()
