"""What every lifecycle command needs: the engine client, the project, its containers.

Commands stay ~10-line adapters: load (or name) the project, call the engine,
hand the stream to :mod:`pycompose.cli.render`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence

from pycompose.client import EngineClient, connect, q
from pycompose.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from pycompose.compose.model import Project

LABEL_PROJECT = "com.docker.compose.project"


def client() -> EngineClient:
    return connect()


def load(args: argparse.Namespace) -> Project:
    from pycompose.cli.project import load_project

    return load_project(args)


def load_record(args: argparse.Namespace) -> dict[str, Any]:
    """The project as the engine receives it, without building the model here."""
    from pycompose.cli.project import load_record as _load_record

    return _load_record(args)


def project_name(args: argparse.Namespace) -> str:
    """``-p`` if given, else the name of the project the compose files describe."""
    if getattr(args, "project_name", None):
        from pycompose.compose.loader import normalize_project_name

        return str(normalize_project_name(args.project_name))
    return str(load(args).name)


def try_load(args: argparse.Namespace) -> Project | None:
    """The project from the compose files, or ``None`` when there are none (``-p`` only)."""
    from pycompose.compose.errors import ProjectNotFoundError

    try:
        return load(args)
    except ProjectNotFoundError:
        if getattr(args, "project_name", None):
            return None
        raise


def encode(project: Project) -> dict[str, Any]:
    """A loaded project as the engine receives it."""
    from pycompose.compose.serialize import project_to_record

    return project_to_record(project)


def containers(c: EngineClient, project: str, *, all: bool = True,
               services: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The project's containers (Docker's ``/containers/json`` shape), service order."""
    items = c.get("/containers/json", all=all,
                  filters={"label": [f"{LABEL_PROJECT}={project}"]})
    if services:
        items = [i for i in items if i["Service"] in services]
    return sorted(items, key=lambda i: (i["Service"], i["Number"], i["Name"]))


def check_services(project: Project | None, services: Sequence[str],
                   known: Sequence[str] = ()) -> None:
    names = set(project.services) if project is not None else set(known)
    unknown = [s for s in services if s not in names]
    if unknown:
        raise UsageError(f"no such service: {', '.join(unknown)}"
                         + (f" (services: {', '.join(sorted(names))})" if names else ""))


def service_container(c: EngineClient, project: str, service: str, index: int = 1
                      ) -> dict[str, Any]:
    items = [i for i in containers(c, project, services=[service])
             if i["Labels"].get("com.docker.compose.oneoff") != "True"]
    if not items:
        raise UsageError(f"service {service!r} has no container in project {project!r}; "
                         f"start it with `pycompose up -d {service}`")
    for i in items:
        if i["Number"] == index:
            return i
    raise UsageError(f"service {service!r} has no container number {index}")


def stream(c: EngineClient, method: str, path: str, body: Any = None,
           **query: Any) -> Iterator[dict[str, Any]]:
    yield from c.stream(method, path, body, query=query or None)


def path(*parts: str) -> str:
    return "/" + "/".join(q(p) for p in parts)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
