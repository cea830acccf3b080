"""Shared by ``pull``, ``push``, ``build`` and ``image pull/push/bootstrap``: the registry
settings from the state root and the environment, and progress rendering.

On a terminal each layer gets a rich progress bar (one ``Live`` display,
refreshed from the callback at most ten times a second, no refresh thread);
otherwise one plain line per status change, as ``docker pull`` prints when
its output is not a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from pycompose.runtime.images import ImageStore
    from pycompose.runtime.registry import ProgressEvent, RegistryConfig


def state_root() -> Path:
    from pycompose.paths import host_paths

    return host_paths().root


def open_store() -> ImageStore:
    from pycompose.runtime.images import ImageStore

    return ImageStore(state_root() / "images")


def registry_config() -> RegistryConfig:
    from pycompose.runtime.registry import RegistryConfig

    return RegistryConfig.load(state_root(), os.environ)


def work_dir() -> Path:
    return state_root() / "downloads"


def selected_services(project: Any, services: list[str], include_deps: bool) -> list[str]:
    """The services a pull/push acts on: those named (all when none), plus, with
    ``include_deps``, everything they depend on, transitively. Sorted."""
    from pycompose.compose.graph import build_graph, select_services
    from pycompose.errors import UsageError

    names = list(services) or list(project.service_names)
    unknown = [n for n in names if n not in project.services]
    if unknown:
        raise UsageError(f"no such service: {', '.join(unknown)}")
    if include_deps:
        return sorted(select_services(build_graph(project), names))
    return sorted(names)


def report_failures(failures: list[tuple[str, Exception]], *, ignore: bool, what: str) -> int:
    """End a pull/push: with ``ignore`` each failure is a warning and the command succeeds;
    otherwise one failure is raised as it is, several as one group (the CLI lists each)."""
    if not failures:
        return 0
    if ignore:
        for service, exc in failures:
            print(f"warning: {service}: {exc}", file=sys.stderr)
        return 0
    if len(failures) == 1:
        raise failures[0][1]
    raise ExceptionGroup(what, [exc for _, exc in failures])


def use_tty(mode: str) -> bool:
    """Whether ``--progress MODE`` means a live display: ``tty``, or ``auto`` on a terminal."""
    if mode in ("plain", "quiet", "json"):
        return False
    return mode == "tty" or sys.stdout.isatty()


class Renderer:
    """Turns :class:`ProgressEvent`s into output; ``prefix`` names the image or service."""

    def __init__(self, *, tty: bool, quiet: bool = False) -> None:
        self.tty = tty and not quiet
        self.quiet = quiet
        self._last: dict[tuple[str, str], str] = {}
        self._tasks: dict[tuple[str, str], Any] = {}
        self._progress: Any = None
        self._live: Any = None
        self._refreshed = 0.0

    @contextmanager
    def running(self) -> Iterator[Renderer]:
        if not self.tty:
            yield self
            return
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.fields[label]}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TextColumn("{task.fields[status]}"),
            auto_refresh=False, console=Console(stderr=False))
        self._live = Live(self._progress, auto_refresh=False, redirect_stdout=False,
                          redirect_stderr=False, console=self._progress.console)
        with self._live:
            try:
                yield self
            finally:
                self._live.refresh()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            print(text, flush=True)

    def callback(self, prefix: str = "") -> Any:
        def on_event(event: ProgressEvent) -> None:
            self.event(prefix, event)
        return on_event

    def event(self, prefix: str, event: ProgressEvent | _Event) -> None:
        if self.quiet:
            return
        head = f"{prefix} " if prefix else ""
        if not event.id:
            if event.status.startswith("Resolving"):
                return
            self.message(f"{head}{event.status}")
            return
        key = (prefix, event.id)
        if self._progress is None:
            if self._last.get(key) != event.status:
                self._last[key] = event.status
                self.message(f"{head}{event.id}: {event.status}")
            return
        task = self._tasks.get(key)
        if task is None:
            task = self._progress.add_task("", total=event.total, label=f"{head}{event.id}",
                                           status=event.status)
            self._tasks[key] = task
        if event.total is not None:
            self._progress.update(task, completed=event.current, total=event.total,
                                  status=event.status)
        else:  # a status without sizes ("Pull complete"): keep the bar where it is
            done = self._progress.tasks[task].total if event.status in (
                "Pull complete", "Already exists", "Layer already exists") else None
            self._progress.update(task, status=event.status,
                                  **({"completed": done} if done is not None else {}))
        now = time.monotonic()
        if now - self._refreshed > 0.1 or not event.status.startswith(("Downloading",
                                                                       "Pushing")):
            self._refreshed = now
            self._live.refresh()


class _Event:
    """A stream line as the renderer reads a :class:`ProgressEvent` (no registry import)."""

    __slots__ = ("current", "id", "status", "total")

    def __init__(self, line: dict[str, Any]) -> None:
        detail = line.get("progressDetail") or {}
        self.id: str = line.get("id") or ""
        self.status: str = line.get("status") or ""
        self.current: int = detail.get("current") or 0
        self.total: int | None = detail.get("total")


def render_pull(stream: Iterator[dict[str, Any]], renderer: Renderer, reference: str, *,
                prefix: str = "") -> dict[str, Any]:
    """Render a pull's progress ``stream`` up to its final line, which is returned."""
    for line in stream:
        done = _pull_line(renderer, prefix, line)
        if done is not None:
            return done
    from pycompose.errors import EngineError

    raise EngineError(f"the engine ended the pull of {reference} without a result")


def _pull_line(renderer: Renderer, prefix: str, line: dict[str, Any]) -> dict[str, Any] | None:
    """Render one stream line; the final line is returned, an error line raised."""
    if "error" in line:
        raise _registry_error(line)
    if line.get("status") == "Pulled" and "reference" in line:
        return dict(line)
    renderer.event(prefix, _Event(line))
    return None


class PullStreams:
    """Several pulls in the engine at once, one connection each, rendered as their lines
    arrive (``select`` over the sockets: no threads, no trio in the CLI)."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._jobs: list[tuple[str, str, Any, Any]] = []  # image, prefix, client, stream
        self._paths: Any = None

    def __enter__(self) -> PullStreams:
        return self

    def __exit__(self, *exc: object) -> None:
        for job in self._jobs:
            job[2].close()

    def start(self, image: str, prefix: str, *, policy: str | None = None) -> None:
        from pycompose.client import connect

        client = connect(self._paths)
        self._paths = client.paths
        self._jobs.append((image, prefix, client, client.pull(image, policy=policy)))

    def results(self) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
        """``(image, final line or the error)`` per pull, as each one ends."""
        import selectors

        from pycompose.errors import EngineError
        from pycompose.runtime.errors import ImageError

        sel = selectors.DefaultSelector()
        active = {id(job[3]): job for job in self._jobs}
        for job in self._jobs:
            sel.register(job[3].fileno(), selectors.EVENT_READ, id(job[3]))
        try:
            while active:
                ready = [k for k, job in active.items() if job[3].pending()] or \
                    [key.data for key, _ in sel.select()]
                for key in ready:
                    image, prefix, client, stream = active[key]
                    outcome: dict[str, Any] | Exception | None
                    try:
                        line = next(stream)
                        outcome = _pull_line(self.renderer, prefix, line)
                    except StopIteration:
                        outcome = EngineError(f"the engine ended the pull of {image} "
                                              "without a result")
                    except (ImageError, EngineError) as exc:
                        outcome = exc
                    if outcome is not None:
                        sel.unregister(stream.fileno())
                        stream.close()
                        del active[key]
                        yield image, outcome
        finally:
            sel.close()


def _registry_error(line: dict[str, Any]) -> Exception:
    from pycompose.runtime.errors import ImageError
    from pycompose.runtime.registry import errors

    kind: Any = getattr(errors, str(line.get("errorType")), None)
    if not (isinstance(kind, type) and issubclass(kind, ImageError)):
        kind = errors.RegistryError
    error: Exception = kind(str(line["error"]))
    return error
