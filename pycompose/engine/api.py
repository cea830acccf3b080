"""The engine's HTTP routes.

Container endpoints follow the Docker Engine API's paths, query parameters and
field names where that costs nothing (``/containers/json?all=1&filters=...``,
``/containers/{id}/json``, ``/containers/{id}/logs``, ``/events``); project
endpoints are pycompose's own (``/projects/{name}/up`` streams progress).
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

import trio

from pycompose.engine.bus import Event
from pycompose.engine.daemon import Engine
from pycompose.engine.http import HTTPError, Request, Response, Router, Send, StreamResponse
from pycompose.engine.store import ContainerRecord

API_VERSION = "1.0"

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"


async def attach_parts(engine: Engine) -> None:
    """Attach the project manager (and through it the runtime) when they are importable."""
    try:
        from pycompose.engine.projects import ProjectManager  # noqa: PLC0415
    except ImportError:
        return
    manager = ProjectManager(engine)
    engine.services["projects"] = manager
    await engine.nursery.start(manager.run)


def build_router(engine: Engine) -> Router:
    r = Router()

    async def ping(_req: Request) -> Response:
        return Response("OK")

    async def version(_req: Request) -> Response:
        return Response({
            "Version": engine.version,
            "ApiVersion": API_VERSION,
            "Os": "linux",
            "Arch": platform.machine(),
            "KernelVersion": platform.release(),
            "PythonVersion": platform.python_version(),
        })

    async def info(_req: Request) -> Response:
        containers = await engine.store.list_containers()
        return Response({
            "ID": str(engine.pid),
            "Pid": engine.pid,
            "StateRoot": str(engine.paths.root),
            "Socket": str(engine.paths.socket),
            "Instance": engine.paths.instance,
            "StartedAt": engine.started_at,
            "Uptime": time.time() - engine.started_at,
            "Containers": len(containers),
            "ContainersRunning": sum(c.state == "running" for c in containers),
            "Projects": len(await engine.store.list_projects()),
        })

    async def events(req: Request) -> StreamResponse:
        filters = _filters(req)
        since = req.arg("since")
        until = req.arg("until")
        since_ns = int(float(since) * 1e9) if since else None
        until_s = float(until) if until else None

        def accept(e: Event) -> bool:
            return _event_matches(e, filters)

        async def produce(send: Send) -> None:
            if until_s is not None and until_s <= time.time():
                # Entirely in the past: the remembered events, then the end of the stream.
                for event in engine.bus.history(since_ns or 0):
                    if accept(event) and event["time"] <= until_s:
                        await send(event)
                return
            async with engine.bus.subscribe(accept, since_ns=since_ns) as stream:
                with trio.move_on_at(_deadline(until_s)):
                    async for event in stream:
                        if until_s is not None and event["time"] > until_s:
                            break
                        await send(event)

        return StreamResponse(produce)

    async def containers_json(req: Request) -> Response:
        show_all = req.flag("all")
        filters = _filters(req)
        records = await engine.store.list_containers()
        out = []
        for c in records:
            if not show_all and c.state not in ("running", "paused", "restarting"):
                continue
            if not _container_matches(c, filters):
                continue
            out.append(container_summary(c))
        return Response(out)

    async def container_inspect(req: Request) -> Response:
        c = await _container(engine, req.params["id"])
        return Response(container_inspect_json(c))

    async def projects_list(req: Request) -> Response:
        show_all = req.flag("all")
        out = []
        for p in await engine.store.list_projects():
            containers = await engine.store.list_containers(p.name, oneoff=False)
            running = sum(c.state == "running" for c in containers)
            if not show_all and running == 0:
                continue
            counts: dict[str, int] = {}
            for c in containers:
                counts[c.state] = counts.get(c.state, 0) + 1
            status = ", ".join(f"{k}({v})" for k, v in sorted(counts.items())) or p.status
            out.append({"Name": p.name, "Status": status, "ConfigFiles": ",".join(p.config_files),
                        "WorkingDir": p.working_dir})
        return Response(out)

    async def project_inspect(req: Request) -> Response:
        p = await engine.store.get_project(req.params["name"])
        if p is None:
            raise HTTPError(404, f"no such project: {req.params['name']}")
        return Response({"Name": p.name, "Status": p.status, "WorkingDir": p.working_dir,
                         "ConfigFiles": p.config_files, "Model": p.model,
                         "CreatedAt": p.created_at, "UpdatedAt": p.updated_at})

    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/events", events)
    r.add("GET", "/containers/json", containers_json)
    r.add("GET", "/containers/{id}/json", container_inspect)
    r.add("GET", "/projects", projects_list)
    r.add("GET", "/projects/{name}", project_inspect)

    from pycompose.engine.images import add_routes as add_image_routes  # noqa: PLC0415

    add_image_routes(r, engine)

    manager = engine.services.get("projects")
    if manager is not None:
        manager.add_routes(r)  # type: ignore[attr-defined]
    return r


# --------------------------------------------------------------------------- helpers


async def _container(engine: Engine, ref: str) -> ContainerRecord:
    c = await engine.store.get_container(ref)
    if c is None:
        raise HTTPError(404, f"No such container: {ref}")
    return c


def _deadline(until: float | None) -> float:
    if until is None:
        return float("inf")
    return trio.current_time() + max(0.0, until - time.time())


def _filters(req: Request) -> dict[str, list[str]]:
    """Docker's ``filters`` query parameter: JSON ``{"label": ["k=v"], ...}``."""
    raw = req.arg("filters")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise HTTPError(400, f"filters is not valid JSON: {raw!r}") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "filters must be a JSON object")
    out: dict[str, list[str]] = {}
    for k, v in value.items():
        # Docker also accepts {"label": {"k=v": true}}
        out[str(k)] = [str(x) for x in (v if isinstance(v, list) else list(v))]
    return out


def _label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _container_matches(c: ContainerRecord, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "label":
            if not _label_match(c.labels, values):
                return False
        elif key == "status":
            if c.state not in values:
                return False
        elif key == "name":
            if not any(v in c.name for v in values):
                return False
        elif key == "id":
            if not any(c.id.startswith(v) for v in values):
                return False
        else:
            raise HTTPError(400, f"invalid filter {key!r}")
    return True


def _event_matches(e: Event, filters: dict[str, list[str]]) -> bool:
    attrs = e["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "type" and e["Type"] not in values:
            return False
        if key == "event" and e["Action"] not in values:
            return False
        if key == "label" and not _label_match(attrs, values):
            return False
        if key == "container" and not (
                e["Type"] == "container"
                and any(v in (e["Actor"]["ID"], attrs.get("name")) for v in values)):
            return False
    return True


def _iso(ts: float | None) -> str:
    if not ts:
        return "0001-01-01T00:00:00Z"
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def human_status(c: ContainerRecord, now: float | None = None) -> str:
    """Docker's ``Status`` text: ``Up 3 minutes (healthy)``, ``Exited (1) 2 seconds ago``."""
    now = time.time() if now is None else now
    if c.state in ("running", "paused", "restarting"):
        text = f"Up {_ago(now - (c.started_at or now))}"
        if c.state == "paused":
            text += " (Paused)"
        elif c.state == "restarting":
            text = f"Restarting ({c.exit_code or 0}) {_ago(now - (c.finished_at or now))} ago"
        if c.health and c.state == "running":
            text += f" ({'health: starting' if c.health == 'starting' else c.health})"
        return text
    if c.state == "exited":
        return f"Exited ({c.exit_code if c.exit_code is not None else -1}) " \
               f"{_ago(now - (c.finished_at or now))} ago"
    return c.state.capitalize()


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    if s < 3600:
        m = s // 60
        return f"{m} minute{'s' if m != 1 else ''}"
    if s < 86400:
        h = s // 3600
        return f"{h} hour{'s' if h != 1 else ''}"
    d = s // 86400
    return f"{d} day{'s' if d != 1 else ''}"


def _command(c: ContainerRecord) -> str:
    argv = c.config.get("_argv") or c.config.get("command") or []
    return " ".join(argv) if isinstance(argv, list) else str(argv)


def container_summary(c: ContainerRecord) -> dict[str, Any]:
    """One entry of ``/containers/json``: Docker's fields plus compose's ``ps`` fields."""
    return {
        "Id": c.id,
        "ID": c.id[:12],
        "Names": [f"/{c.name}"],
        "Name": c.name,
        "Image": c.image,
        "Command": _command(c),
        "Created": int(c.created_at),
        "State": c.state,
        "Status": human_status(c),
        "Health": c.health,
        "ExitCode": c.exit_code if c.exit_code is not None else 0,
        "Labels": c.labels,
        "Project": c.project,
        "Service": c.service,
        "Number": c.number,
        "Publishers": c.config.get("_publishers", []),
        "Ports": c.config.get("_publishers", []),
    }


def container_inspect_json(c: ContainerRecord) -> dict[str, Any]:
    """``/containers/{id}/json``: Docker's inspect shape, with the health log kept for probes."""
    return {
        "Id": c.id,
        "Name": f"/{c.name}",
        "Created": _iso(c.created_at),
        "Image": c.image,
        "RestartCount": c.restart_count,
        "State": {
            "Status": c.state,
            "Running": c.state in ("running", "paused", "restarting"),
            "Paused": c.state == "paused",
            "Restarting": c.state == "restarting",
            "OOMKilled": c.oom_killed,
            "Dead": c.state == "dead",
            "Pid": c.pid or 0,
            "ExitCode": c.exit_code if c.exit_code is not None else 0,
            "Error": c.error,
            "StartedAt": _iso(c.started_at),
            "FinishedAt": _iso(c.finished_at),
            **({"Health": {"Status": c.health, "FailingStreak": _failing_streak(c),
                           "Log": c.health_log}} if c.health else {}),
        },
        "Config": {
            "Labels": c.labels,
            "Image": c.image,
            "Hostname": c.config.get("hostname") or c.id[:12],
        },
        "Compose": {"Project": c.project, "Service": c.service, "Number": c.number,
                    "OneOff": c.oneoff, "ConfigHash": c.config_hash},
        "EnginePid": os.getpid(),
    }


def _failing_streak(c: ContainerRecord) -> int:
    n = 0
    for entry in reversed(c.health_log):
        if entry.get("ExitCode") == 0:
            break
        n += 1
    return n
