"""Projects and containers over HTTP: ``up``/``down``/``start``/``stop`` as streamed jobs,
Docker-shaped container endpoints, logs merged in time order.

A convergence job runs in the engine's own nursery, not in the request: a
client that goes away (Ctrl-C on ``up -d``) stops receiving progress, but the
job finishes, so state is never left half-converged by a closed socket. Jobs on
one project are serialised by the project's lock; different projects run in
parallel.

Stream messages (NDJSON), in order: ``{"type": "plan", ...}``, any number of
``{"type": "progress", ...}``, then exactly one ``{"type": "result", ...}``
(``ok``, per-service reports, errors) — or a single ``{"type": "error"}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from pycompose.compose.backend import ConditionFailed, ProgressEvent
from pycompose.compose.build import project_from_record
from pycompose.compose.errors import ComposeError
from pycompose.compose.model import FrozenDict, Project
from pycompose.compose.plan import (
    Action,
    DownOptions,
    Operation,
    Plan,
    UpOptions,
    plan_down,
    plan_up,
    selected_services,
    topological_order,
)
from pycompose.compose.scheduler import RunResult, Scheduler
from pycompose.compose.serialize import project_to_record
from pycompose.engine.backend import EngineBackend, EngineBackendError, ImageResolver
from pycompose.engine.containers import (
    Containers,
    ContainerStateConflict,
    NoSuchContainer,
    image_reference,
)
from pycompose.engine.daemon import Engine
from pycompose.engine.http import (
    HTTPError,
    Request,
    Response,
    Router,
    Send,
    StreamResponse,
    UpgradeResponse,
)
from pycompose.engine.specs import network_warning
from pycompose.engine.store import ProjectRecord
from pycompose.errors import EngineError, PycomposeError
from pycompose.network.errors import NetworkError
from pycompose.runtime import errors as rterrors
from pycompose.runtime.spec import ExecSpec

log = logging.getLogger("pycompose.engine.projects")

STARTUP_TIMEOUT = 20.0  # below the CLI's 30 s wait, so its error is the one shown

Job = Callable[[Callable[[dict[str, Any]], None]], Awaitable[dict[str, Any]]]


# What a project record that is not in project_to_record's shape raises on the way in.
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


def _sent_project(data: Any) -> Project:
    """The project a request carries (:func:`project_to_record`'s shape, as the CLI's
    ``load_record`` sends it)."""
    try:
        return project_from_record(data)
    except _MALFORMED as exc:
        raise HTTPError(400, f"malformed project record: {type(exc).__name__}: {exc}") from None


def _progress(e: ProgressEvent) -> dict[str, Any]:
    return {"type": "progress", "resource": e.resource, "status": e.status, "text": e.text,
            "service": e.service, "kind": e.kind, "details": dict(e.details),
            "time": time.time()}


def _result(result: RunResult, **extra: Any) -> dict[str, Any]:
    return {"type": "result", "ok": result.ok, "errors": result.errors,
            "services": [r.to_json() for r in sorted(result.services.values(),
                                                      key=lambda r: r.name)], **extra}


class ProjectManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.containers: Containers | None = None
        self.networks: Any = None
        self._jobs = 0
        self._idle = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ start-up

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        from pycompose.runtime.client import open_runtime  # noqa: PLC0415

        paths = self.engine.paths
        from pycompose.engine.networks import Networks  # noqa: PLC0415

        # Start-up is bounded: a supervisor that never answers is an error with a pointer to
        # its log, not an engine that silently never becomes ready.
        with trio.CancelScope(deadline=trio.current_time() + STARTUP_TIMEOUT) as startup:
            async with open_runtime(paths.root, paths.instance) as rt, \
                    trio.open_nursery() as nursery:
                self._nursery = nursery
                self.networks = Networks(paths, self.engine.store)
                await nursery.start(self.networks.run)
                self.containers = Containers(self.engine.store, self.engine.bus, rt,
                                             ImageResolver(paths.root), self.networks)
                await nursery.start(self.containers.run)
                await self._collect_garbage(rt)
                startup.deadline = math.inf
                task_status.started()
        if startup.cancelled_caught:
            raise EngineError(
                f"the runtime supervisor of {paths.root} did not answer within "
                f"{STARTUP_TIMEOUT:g} s; see {paths.root / 'supervisor.log'}")

    async def wait_idle(self) -> None:
        """Return once no job (up, down, ...) is running: a graceful stop lets them finish."""
        while self._jobs:
            await self._idle.wait()

    async def _collect_garbage(self, rt: Any) -> None:
        """Leftovers of containers and networks that no longer exist (a crashed engine,
        a killed test): safe at every start, because the records say what is alive."""
        from pycompose.network.gc import collect_garbage  # noqa: PLC0415

        c = self._c()
        try:
            report = await rt.gc()
            log.info("runtime gc: %s", report)
        except rterrors.ContainerRuntimeError as exc:
            log.warning("runtime gc failed: %s", exc)
        from pycompose.engine.backend import collect_handed_over  # noqa: PLC0415

        orphaned = await collect_handed_over(self.engine.store, self.engine.paths.root)
        if orphaned:
            log.info("removed %d anonymous volume(s) no container took over: %s",
                     len(orphaned), " ".join(n[:12] for n in orphaned))
        live_links: list[str] = [n.bridge for n in self.networks.nets.values()]
        live_netns: list[str] = []
        for rec in c.records.values():
            net = rec.config.get("_net") or {}
            live_links += [e["host_ifname"] for e in net.get("endpoints", ())]
            if net.get("netns"):
                live_netns.append(net["netns"])
        try:
            report = await collect_garbage(
                instance=self.engine.paths.instance, root=self.engine.paths.root,
                table=self.engine.paths.host_tag, live_links=live_links,
                live_netns=live_netns, live_owners=list(c.records))
            log.info("network gc: %s", report)
        except NetworkError as exc:
            log.warning("network gc failed: %s", exc)

    def _c(self) -> Containers:
        if self.containers is None:
            raise HTTPError(503, "the engine is still starting")
        return self.containers

    def _backend(self) -> EngineBackend:
        return EngineBackend(self._c(), self.engine.store, self.engine.paths.root,
                             self.networks)

    # ------------------------------------------------------------------ jobs

    def _stream_job(self, project_name: str, job: Job, *, locked: bool = True
                    ) -> StreamResponse:
        """Run ``job`` in the engine's nursery under the project lock (unless the job takes
        it itself, ``locked=False``); stream its messages."""
        send_ch, recv_ch = trio.open_memory_channel[dict[str, Any]](math.inf)

        def emit(msg: dict[str, Any]) -> None:
            # A client that left closes the channel; the job goes on.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                send_ch.send_nowait(msg)

        async def runner() -> None:
            self._jobs += 1
            with send_ch:
                try:
                    if locked:
                        async with self.engine.project_lock(project_name):
                            emit(await job(emit))
                    else:
                        emit(await job(emit))
                except (ComposeError, EngineBackendError, rterrors.ContainerRuntimeError,
                        PycomposeError, NetworkError, HTTPError) as exc:
                    emit({"type": "error", "message": str(exc)})
                except Exception as exc:
                    log.exception("job on project %s failed", project_name)
                    emit({"type": "error",
                          "message": f"internal error: {type(exc).__name__}: {exc}"})
                finally:
                    self._jobs -= 1
                    if self._jobs == 0:
                        self._idle.set()
                        self._idle = trio.Event()

        assert self._nursery is not None
        self._nursery.start_soon(runner)

        async def produce(send: Send) -> None:
            with recv_ch:
                async for msg in recv_ch:
                    await send(msg)

        return StreamResponse(produce)

    async def _preflight_images(self, project: Project, services: list[str],
                                emit: Callable[[dict[str, Any]], None] | None = None,
                                pull: str | None = None, *, fetch: bool = True
                                ) -> tuple[list[str], dict[str, str]]:
        """Every image the services need must be there before anything starts: pulled as
        the service's ``pull_policy`` (or ``up --pull``) says, each image once. Returns the
        errors and, per service, the id of its image (what the plan compares containers
        with). ``fetch=False`` (dry runs) only looks."""
        from pycompose.runtime.images import ImageStore  # noqa: PLC0415
        from pycompose.runtime.registry import (  # noqa: PLC0415
            RegistryConfig,
            RegistryError,
            ensure_image,
        )

        root = self.engine.paths.root
        errors: list[str] = []
        ids: dict[str, str] = {}
        store = ImageStore(root / "images")
        config = RegistryConfig.load(root, os.environ)
        done: dict[tuple[str, str], str] = {}
        failed: dict[tuple[str, str], str] = {}
        for name in sorted(set(services)):
            svc = project.services[name]
            try:
                ref = image_reference(project, svc)
            except rterrors.ImageError as exc:
                errors.append(str(exc))
                continue
            # A built image is never pulled: `up` builds it first (or says to).
            policy = "build" if svc.build is not None and not svc.image else (
                pull or svc.pull_policy or "missing")
            if not fetch:
                policy = "never"
            key = (ref, policy)
            if key not in done and key not in failed:
                def progress(_event: Any, image: str = ref, service: str = name
                             ) -> None:
                    if emit is not None:
                        emit({"type": "progress", "resource": image, "status": "Pulling",
                              "kind": "image", "service": service, "text": "",
                              "details": {}})

                try:
                    image = await ensure_image(store, ref, policy, config=config,
                                               work_dir=root / "downloads", progress=progress,
                                               http=self.engine.registry_http())
                    done[key] = image.id
                except (rterrors.ImageError, RegistryError, ValueError) as exc:
                    failed[key] = str(exc)
            if key in failed:
                if fetch:
                    errors.append(f"service {name}: {failed[key]}")
                continue
            ids[name] = done[key]
        return errors, ids

    async def _preflight_volumes(self, project: Project, services: list[str]) -> list[str]:
        """``external: true`` volumes must exist before anything starts."""
        from pycompose.runtime.volumes import inspect_volume  # noqa: PLC0415

        errors = []
        for key, vol in sorted(project.volumes.items()):
            used = any(v.type == "volume" and v.source == key
                       for n in services for v in project.services[n].volumes)
            if not (vol.external and used):
                continue
            try:
                await trio.to_thread.run_sync(inspect_volume, str(self.engine.paths.root),
                                              vol.name)
            except rterrors.ContainerError:
                errors.append(f"external volume {vol.name!r} (volumes.{key}) does not exist; "
                              "create it first or drop `external: true`")
        return errors

    async def _save_project(self, project: Project, status: str) -> None:
        await self.engine.store.put_project(ProjectRecord(
            name=project.name, working_dir=project.working_dir,
            config_files=list(project.compose_files), model=project_to_record(project),
            status=status))

    async def _stored_project(self, name: str) -> Project | None:
        rec = await self.engine.store.get_project(name)
        if rec is None:
            return None
        try:
            return project_from_record(rec.model)
        except _MALFORMED:
            # Written by an older engine in another shape: as if unknown (the next
            # ``up`` stores it again; ``down`` works from the containers' labels).
            return None

    # ------------------------------------------------------------------ up / down

    async def up(self, req: Request) -> StreamResponse:
        body = req.json() or {}
        project = _sent_project(body["project"])
        if project.name != req.params["name"]:
            raise HTTPError(400, f"project name {project.name!r} does not match the URL")
        o = body.get("options") or {}
        options = UpOptions(
            services=tuple(o.get("services") or ()), no_deps=bool(o.get("no_deps")),
            force_recreate=bool(o.get("force_recreate")),
            no_recreate=bool(o.get("no_recreate")),
            remove_orphans=bool(o.get("remove_orphans")), no_start=bool(o.get("no_start")),
            scale={k: int(v) for k, v in (o.get("scale") or {}).items()})
        wait = bool(o.get("wait"))
        wait_timeout = o.get("wait_timeout")
        stop_timeout = o.get("timeout")
        parallel = o.get("parallel")
        dry_run = bool(o.get("dry_run"))

        async def job(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            backend = self._backend()
            selected = selected_services(project, options)
            # Images first (pulls, and the ids a recreate decision needs), then the plan.
            missing, image_ids = await self._preflight_images(
                project, selected, emit, o.get("pull"), fetch=not dry_run)
            observed = await backend.observe(project)
            plan = plan_up(project, observed, dataclasses.replace(options, image_ids=image_ids))
            warnings = list(plan.warnings)
            if self.networks is None:
                warnings += [w for s in plan.order
                             if (w := network_warning(project.services[s])) is not None]
            emit({"type": "plan", "text": str(plan), "changes": plan.changes,
                  "warnings": warnings})
            if dry_run:
                return {"type": "result", "ok": True, "dry_run": True, "services": [],
                        "errors": []}
            creating_services = sorted({op.service for op in plan.operations()
                                        if op.action is Action.CREATE and op.service})
            missing = [m for m in missing
                       if any(m.startswith(f"service {s}:") for s in creating_services)
                       or not m.startswith("service ")]
            missing += await self._preflight_volumes(project, creating_services)
            if not missing and self.networks is not None:
                creating = sorted({op.service for op in plan.operations()
                                   if op.action is Action.CREATE and op.service})
                replaced = {op.container_id for op in plan.operations()
                            if op.action is Action.REMOVE and op.container_id}
                try:
                    self.networks.preflight(project, creating, replaced)
                except NetworkError as exc:
                    missing = [str(exc)]
            if missing:
                return {"type": "result", "ok": False, "services": [],
                        "errors": missing + ["nothing was started"]}
            await self._save_project(project, "converging")
            scheduler = Scheduler(backend, project, plan,
                                  emit=lambda e: emit(_progress(e)), wait=wait,
                                  parallel=parallel if parallel and parallel > 0 else None,
                                  stop_timeout=stop_timeout)
            timed_out = False
            if wait and wait_timeout:
                with trio.move_on_after(float(wait_timeout)) as scope:
                    result = await scheduler.run()
                timed_out = scope.cancelled_caught
                if timed_out:
                    result = RunResult(scheduler.reports, scheduler.errors + [
                        f"timed out after {wait_timeout}s waiting for services to be ready"])
                    for r in result.services.values():
                        if r.status == "pending":
                            r.status, r.error = "failed", "not ready when --wait-timeout expired"
            else:
                result = await scheduler.run()
            await self.engine.store.set_project_status(project.name,
                                                       "running" if result.ok else "failed")
            return _result(result, changes=plan.changes, timed_out=timed_out)

        return self._stream_job(project.name, job)

    async def down(self, req: Request) -> StreamResponse:
        name = req.params["name"]
        body = req.json() or {}
        o = body.get("options") or {}
        sent = _sent_project(body["project"]) if body.get("project") else None
        options = DownOptions(volumes=bool(o.get("volumes")),
                              remove_orphans=bool(o.get("remove_orphans")),
                              services=tuple(o.get("services") or ()))

        async def job(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            project = sent or await self._stored_project(name)
            backend = self._backend()
            shell = project or Project(name=name, working_dir="/")
            observed = await backend.observe(shell)
            plan = plan_down(project, name, observed, options)
            emit({"type": "plan", "text": str(plan), "changes": plan.changes,
                  "warnings": list(plan.warnings)})
            if o.get("dry_run"):
                return {"type": "result", "ok": True, "dry_run": True, "services": [],
                        "errors": []}
            result = await Scheduler(backend, shell, plan, emit=lambda e: emit(_progress(e)),
                                     stop_timeout=o.get("timeout"),
                                     remove_volumes=options.volumes).run()
            if not options.services and not self._c().of_project(name):
                await self.engine.store.delete_project(name)
            return _result(result)

        return self._stream_job(name, job)

    async def run_oneoff(self, req: Request) -> StreamResponse | UpgradeResponse:
        """``run``: dependencies up (unless ``no_deps``), then a one-off container whose
        output is streamed (``{"type": "log"}``) until it exits (``{"type": "exit"}``)."""
        import dataclasses  # noqa: PLC0415
        import secrets  # noqa: PLC0415

        from pycompose.compose.hashing import config_hash  # noqa: PLC0415
        from pycompose.compose.plan import service_dependencies  # noqa: PLC0415
        from pycompose.runtime.logs import follow, read_logs  # noqa: PLC0415

        body = req.json() or {}
        project = _sent_project(body["project"])
        o = body.get("options") or {}
        name = str(o.get("service") or "")
        if name not in project.services:
            raise HTTPError(404, f"no such service: {name}")
        base = project.services[name]
        env = dict(base.environment)
        for item in o.get("env") or ():
            k, sep, v = item.partition("=")
            env[k] = v if sep else None
        extra_volumes = tuple(_run_volume(project, v) for v in o.get("volumes") or ())
        extra_ports = tuple(_run_port(p) for p in o.get("publish") or ())
        service = dataclasses.replace(
            base,
            volumes=base.volumes + extra_volumes,
            command=tuple(o["command"]) if o.get("command") else base.command,
            entrypoint=tuple(o["entrypoint"]) if o.get("entrypoint") is not None
            else base.entrypoint,
            environment=FrozenDict(env), user=o.get("user") or base.user,
            working_dir=o.get("workdir") or base.working_dir, restart=None,
            tty=bool(o.get("tty")) if "tty" in o else base.tty,
            stdin_open=bool(o.get("interactive")) or base.stdin_open,
            ports=(base.ports if o.get("service_ports") else ()) + extra_ports,
            container_name=None,
            healthcheck=base.healthcheck)
        c = self._c()

        interactive: dict[str, Any] = {}  # set by the upgraded (attached) variant

        async def job(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            # The project lock covers the dependencies and the creation, not the one-off's
            # whole run (which may be an interactive shell).
            async with self.engine.project_lock(project.name):
                started = await prepare(emit)
            if isinstance(started, dict):
                return started
            return await follow_run(emit, *started)

        async def prepare(emit: Callable[[dict[str, Any]], None]) -> Any:
            deps = sorted(service_dependencies(project, base))
            if deps and not o.get("no_deps"):
                backend = self._backend()
                missing, ids = await self._preflight_images(
                    project, selected_services(project, UpOptions(services=tuple(deps))), emit)
                plan = plan_up(project, await backend.observe(project),
                               UpOptions(services=tuple(deps), image_ids=ids))
                if missing:
                    return {"type": "result", "ok": False, "services": [],
                            "errors": missing + ["nothing was started"]}
                await self._save_project(project, "converging")
                result = await Scheduler(backend, project, plan,
                                         emit=lambda e: emit(_progress(e))).run()
                if not result.ok:
                    return _result(result)
                # The one-off itself waits for its dependencies' conditions, as a service would.
                for dep, spec in sorted(service_dependencies(project, base).items()):
                    for r in c.of_project(project.name, oneoff=False):
                        if r.service != dep:
                            continue
                        try:
                            if spec.condition == "service_healthy":
                                await c.wait_healthy(r.id)
                            elif spec.condition == "service_completed_successfully":
                                code = await c.wait_exit(r.id)
                                if code != 0:
                                    raise ConditionFailed(r.name, f"exited with code {code}")
                        except ConditionFailed as exc:
                            if spec.required:
                                return {"type": "result", "ok": False, "services": [],
                                        "errors": [f"not started: dependency {dep} failed: "
                                                   f"{exc}"]}
            missing, _ = await self._preflight_images(project, [name], emit)
            if missing:
                return {"type": "result", "ok": False, "services": [], "errors": missing}
            if await self.engine.store.get_project(project.name) is None:
                # The one-off may create networks: `down` must know the project.
                await self._save_project(project, "running")
            number = 1 + max((r.number for r in c.of_project(project.name, oneoff=True)
                              if r.service == name), default=0)
            cname = o.get("name") or f"{project.name}-{name}-run-{secrets.token_hex(6)}"
            rec = await c.create(project, base, number, name=cname,
                                 config_hash=config_hash(base), oneoff=True, override=service)
            emit({"type": "progress", "resource": cname, "status": "Created",
                  "kind": "container", "service": name, "text": "", "details": {}})
            try:
                await c.start(rec.id)
            except rterrors.ContainerRuntimeError as exc:
                if o.get("rm"):
                    await c.remove(rec.id, force=True, volumes=True)
                return {"type": "result", "ok": False, "services": [],
                        "errors": [f"{cname}: {exc}"], "exit_code": 127}
            return rec, cname

        async def follow_run(emit: Callable[[dict[str, Any]], None], rec: Any, cname: str
                             ) -> dict[str, Any]:
            if o.get("detach"):
                return {"type": "result", "ok": True, "services": [], "errors": [],
                        "container": cname}
            path = c.rt.log_path(rec.id)
            sent = 0

            async def pump() -> None:
                nonlocal sent
                async for e in follow(path):
                    emit({"type": "log", "stream": e.stream, "log": e.text})
                    sent += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump)
                if interactive.get("input") is not None and service.stdin_open:
                    nursery.start_soon(interactive["input"], rec.id)
                code = await c.wait_exit(rec.id)
                nursery.cancel_scope.cancel()
            for e in (await trio.to_thread.run_sync(lambda: read_logs(path)))[sent:]:
                emit({"type": "log", "stream": e.stream, "log": e.text})
            if o.get("rm"):
                await self._backend().remove_container(rec.id, volumes=True)
            return {"type": "result", "ok": True, "services": [], "errors": [],
                    "container": cname, "exit_code": code}

        if req.headers.get("upgrade") == "pycompose-stream":
            interactive["tty"] = bool(o.get("tty"))
            return UpgradeResponse(lambda stream, leftover: self._run_attached(
                project.name, job, interactive, stream, leftover))
        return self._stream_job(project.name, job, locked=False)

    async def _run_attached(self, project_name: str, job: Job, interactive: dict[str, Any],
                            stream: trio.abc.Stream, leftover: bytes) -> None:
        """``run`` with the caller's terminal: the same job, its messages as frames
        (kind 6 JSON progress, 1/2 output, 3 the result), and the caller's input frames
        (0 data, 4 resize, 5 end) fed to the container's stdin through the runtime."""
        c = self._c()
        lock = trio.Lock()
        inbox: list[tuple[int, bytes]] = []
        arrived = trio.Event()
        closed = False

        async def frame(kind: int, data: bytes) -> None:
            async with lock:
                await stream.send_all(bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big")
                                      + data)

        async def reader() -> None:
            nonlocal arrived, closed
            buf = bytearray(leftover)
            try:
                while True:
                    while len(buf) >= 8:
                        n = int.from_bytes(buf[4:8], "big")
                        if len(buf) < 8 + n:
                            break
                        inbox.append((buf[0], bytes(buf[8:8 + n])))
                        del buf[:8 + n]
                        arrived.set()
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    buf += data
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            closed = True
            arrived.set()

        async def feed_input(cid: str) -> None:
            nonlocal arrived
            try:
                stdin = await c.rt.attach(cid)
            except rterrors.ContainerRuntimeError:
                return  # it has exited already: nothing to type into
            try:
                while True:
                    while inbox:
                        kind, payload = inbox.pop(0)
                        if kind == 0:
                            await stdin.send_all(payload)
                        elif kind == 4:
                            size = json.loads(payload)
                            with contextlib.suppress(rterrors.ContainerRuntimeError):
                                await c.rt.resize(cid, int(size["rows"]), int(size["cols"]))
                        elif kind == 5 and not interactive.get("tty"):
                            # End of the caller's input: the container reads EOF once
                            # the supervisor's end of its stdin pipe is closed too.
                            await stdin.aclose()
                            with contextlib.suppress(rterrors.ContainerRuntimeError):
                                await c.rt.close_stdin(cid)
                            return
                    if closed:
                        return
                    await arrived.wait()
                    arrived = trio.Event()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                with contextlib.suppress(trio.ClosedResourceError):
                    await stdin.aclose()

        interactive["input"] = feed_input
        pending: list[bytes] = []

        def emit(msg: dict[str, Any]) -> None:
            if msg.get("type") == "log":
                kind = 2 if msg.get("stream") == "stderr" else 1
                pending.append(bytes([kind]) + str(msg["log"]).encode())
            else:
                pending.append(bytes([6]) + json.dumps(msg).encode())
            wake.set()

        wake = trio.Event()
        result: dict[str, Any] = {}

        async def run_job() -> None:
            try:
                result.update(await job(emit))  # it takes the project lock itself
            except (ComposeError, EngineBackendError, rterrors.ContainerRuntimeError,
                    PycomposeError, NetworkError, HTTPError) as exc:
                result.update({"type": "error", "message": str(exc)})
            except Exception as exc:
                log.exception("run on project %s failed", project_name)
                result.update({"type": "error",
                               "message": f"internal error: {type(exc).__name__}: {exc}"})
            finally:
                wake.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            job_done = trio.Event()

            async def job_task() -> None:
                await run_job()
                job_done.set()
                wake.set()

            nursery.start_soon(job_task)
            while True:
                await wake.wait()
                wake = trio.Event()
                while pending:
                    item = pending.pop(0)
                    await frame(item[0], item[1:])
                if job_done.is_set() and not pending:
                    break
            await frame(3, json.dumps(result).encode())
            nursery.cancel_scope.cancel()

    async def _lifecycle(self, req: Request, verb: str) -> StreamResponse:
        """``start``/``stop``/``restart`` of services: the same scheduler, with plans of
        single verbs (stop goes over the reversed graph)."""
        name = req.params["name"]
        body = req.json() or {}
        services = set(body.get("services") or ())
        timeout = body.get("timeout")

        async def job(emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            project = await self._stored_project(name) or Project(name=name, working_dir="/")
            unknown = services - {r.service for r in self._c().of_project(name)} - set(
                project.services)
            if unknown:
                raise HTTPError(404, f"no such service: {', '.join(sorted(unknown))}")
            recs = [r for r in self._c().of_project(name, oneoff=False)
                    if not services or r.service in services]
            backend = self._backend()
            order = topological_order(project) if project.services else ()
            result: RunResult | None = None
            phases = {"stop": ("stop",), "start": ("start",), "restart": ("stop", "start")}
            for phase in phases[verb]:
                chains: dict[str, list[tuple[Operation, ...]]] = {}
                for r in recs:
                    running = r.state in ("running", "paused", "restarting")
                    if phase == "stop" and running:
                        op = Operation(action=Action.STOP, subject=r.name, cause=verb,
                                       service=r.service, number=r.number, container_id=r.id)
                    elif phase == "start" and (not running or verb == "restart"):
                        op = Operation(action=Action.START, subject=r.name, cause=verb,
                                       service=r.service, number=r.number, container_id=r.id)
                    else:
                        continue
                    chains.setdefault(r.service, []).append((op,))
                plan = Plan(project=name, order=tuple(order),
                            services=FrozenDict({k: tuple(v) for k, v in chains.items()}),
                            reverse=phase == "stop")
                result = await Scheduler(backend, project, plan,
                                         emit=lambda e: emit(_progress(e)),
                                         stop_timeout=timeout).run()
                if not result.ok:
                    break
            assert result is not None
            return _result(result)

        return self._stream_job(name, job)

    # ------------------------------------------------------------------ logs

    async def project_logs(self, req: Request) -> StreamResponse:
        name = req.params["name"]
        services = {s for s in (req.arg("services") or "").split(",") if s}
        recs = [r for r in self._c().of_project(name)
                if (not services or r.service in services) and not r.oneoff]
        unknown = services - {r.service for r in self._c().of_project(name)}
        if unknown:
            raise HTTPError(404, f"no such service: {', '.join(sorted(unknown))}")
        return self._logs(recs, req)

    async def container_logs(self, req: Request) -> StreamResponse:
        return self._logs([self._get(req.params["id"])], req)

    def _logs(self, recs: list[Any], req: Request) -> StreamResponse:
        from pycompose.runtime.logs import follow, read_logs  # noqa: PLC0415

        c = self._c()
        tail_arg = req.arg("tail", "all")
        tail = None if tail_arg in (None, "all", "") else int(tail_arg)
        since, until = _time_arg(req.arg("since")), _time_arg(req.arg("until"))
        stdout, stderr = req.flag("stdout", True), req.flag("stderr", True)
        following = req.flag("follow")

        def entry(rec: Any, e: Any) -> dict[str, Any] | None:
            if (e.stream == "stdout" and not stdout) or (e.stream == "stderr" and not stderr):
                return None
            return {"container": rec.name, "service": rec.service, "stream": e.stream,
                    "time": e.time, "log": e.text}

        async def produce(send: Send) -> None:
            def read_all() -> list[tuple[int, int, dict[str, Any]]]:
                rows = []
                for i, rec in enumerate(recs):
                    for e in read_logs(c.rt.log_path(rec.id), tail=tail, since=since,
                                       until=until):
                        item = entry(rec, e)
                        if item is not None:
                            rows.append((e.time_ns, i, item))
                return rows

            if not following:
                rows = await trio.to_thread.run_sync(read_all)
                for _, _, item in sorted(rows, key=lambda r: (r[0], r[1])):
                    await send(item)
                return
            # Follow: the backlog merged in time order, then lines as they come.
            rows = await trio.to_thread.run_sync(read_all)
            for _, _, item in sorted(rows, key=lambda r: (r[0], r[1])):
                await send(item)

            async def pump(rec: Any) -> None:
                # Only entries after the backlog: the follower starts at the end of the file.
                async for e in follow(c.rt.log_path(rec.id), tail=0):
                    item = entry(rec, e)
                    if item is not None:
                        await send(item)

            async def until_all_stopped() -> None:
                # As docker: a followed stream ends once none of its containers runs any more
                # (``restarting`` counts as running). A grace moment lets the last lines in.
                # With ``stop_when=any`` (up --abort-on-container-exit) the first exit ends it.
                def stopped(r: Any) -> bool:
                    return bool(r.state in ("exited", "dead", "created"))

                async def one(cid: str, done: trio.Event) -> None:
                    with contextlib.suppress(NoSuchContainer):
                        await c._wait_state(cid, stopped)
                    done.set()

                events = [trio.Event() for _ in recs]
                async with trio.open_nursery() as watchers:
                    for rec, ev in zip(recs, events, strict=True):
                        watchers.start_soon(one, rec.id, ev)
                    if req.arg("stop_when") == "any":
                        await _first(events)
                    else:
                        for ev in events:
                            await ev.wait()
                    watchers.cancel_scope.cancel()
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()

            async with trio.open_nursery() as nursery:
                for rec in recs:
                    nursery.start_soon(pump, rec)
                if recs and req.arg("stop_when") != "never":
                    nursery.start_soon(until_all_stopped)

        return StreamResponse(produce)

    # ------------------------------------------------------------------ containers

    def _get(self, ref: str) -> Any:
        try:
            return self._c().get(ref)
        except NoSuchContainer as exc:
            raise HTTPError(404, str(exc)) from None

    async def _verb(self, req: Request, fn: Callable[..., Awaitable[Any]], *args: Any) -> Response:
        rec = self._get(req.params["id"])
        try:
            await fn(rec.id, *args)
        except ContainerStateConflict as exc:
            raise HTTPError(409, str(exc)) from None
        except rterrors.ContainerRuntimeError as exc:
            raise HTTPError(500, str(exc)) from None
        return Response(None, status=204)

    async def _exec_attached(self, rec: Any, spec: ExecSpec, stream: trio.abc.Stream,
                             leftover: bytes) -> None:
        """Interactive exec over the upgraded connection, in frames both ways:
        ``[kind, 0, 0, 0, len (4 bytes BE)]`` + payload. Client -> engine: kind 0 stdin
        bytes, 4 a terminal resize (``{"rows": r, "cols": c}``), 5 end of stdin.
        Engine -> client: kind 1 stdout (the terminal, with a tty), 2 stderr, 3 the end
        (``{"exit_code": n}`` or an error)."""
        c = self._c()
        lock = trio.Lock()

        async def frame(kind: int, data: bytes) -> None:
            async with lock:
                await stream.send_all(bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big")
                                      + data)

        try:
            proc = await c.rt.exec(rec.id, spec)
        except rterrors.ContainerRuntimeError as exc:
            await frame(3, json.dumps({"exit_code": 126, "error": str(exc)}).encode())
            return
        try:
            async def feed() -> None:
                buf = bytearray(leftover)
                stdin_open = proc.stdin is not None
                try:
                    while True:
                        while len(buf) >= 8:
                            size = int.from_bytes(buf[4:8], "big")
                            if len(buf) < 8 + size:
                                break
                            kind, payload = buf[0], bytes(buf[8:8 + size])
                            del buf[:8 + size]
                            if kind == 0 and stdin_open and proc.stdin is not None:
                                await proc.stdin.send_all(payload)
                            elif kind == 4 and proc.tty:
                                size_ = json.loads(payload)
                                with contextlib.suppress(rterrors.ContainerRuntimeError):
                                    await proc.resize(int(size_["rows"]), int(size_["cols"]))
                            elif kind == 5 and stdin_open and proc.stdin is not None:
                                stdin_open = False
                                if not proc.tty:  # a terminal's input stays open
                                    await proc.stdin.aclose()
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        buf += data
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                finally:
                    if proc.stdin is not None and not proc.tty:
                        await proc.stdin.aclose()

            async def pump(src: Any, kind: int) -> None:
                while chunk := await src.receive_some(65536):
                    await frame(kind, chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)
                async with trio.open_nursery() as outputs:
                    outputs.start_soon(pump, proc.stdout, 1)
                    if proc.stderr is not None:
                        outputs.start_soon(pump, proc.stderr, 2)
                code = await proc.wait()
                await frame(3, json.dumps({"exit_code": code}).encode())
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if proc.status is None:
                    with contextlib.suppress(rterrors.ContainerRuntimeError):
                        await proc.kill()
                await proc.aclose()

    async def exec_(self, req: Request) -> StreamResponse | UpgradeResponse:
        rec = self._get(req.params["id"])
        body = req.json() or {}
        cmd = body.get("Cmd") or []
        if not cmd:
            raise HTTPError(400, "exec needs a command (Cmd)")
        if rec.state != "running":
            raise HTTPError(409, f"container {rec.name} is not running ({rec.state})")
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in body.get("Env") or [])
        spec = ExecSpec(argv=tuple(cmd), env=env, user=body.get("User") or None,
                        working_dir=body.get("WorkingDir") or None,
                        privileged=bool(body.get("Privileged")))
        c = self._c()
        if req.headers.get("upgrade") == "pycompose-stream" and not body.get("Detach"):
            size = body.get("Size")
            return UpgradeResponse(lambda stream, leftover: self._exec_attached(
                rec, dataclasses.replace(
                    spec, stdin=not body.get("NoStdin"), tty=bool(body.get("Tty")),
                    tty_size=(int(size[0]), int(size[1])) if body.get("Tty") and size
                    else None), stream, leftover))

        async def produce(send: Send) -> None:
            try:
                proc = await c.rt.exec(rec.id, spec)
            except rterrors.ContainerRuntimeError as exc:
                await send({"error": str(exc), "exit_code": 126})
                return
            try:
                if body.get("Detach"):
                    await send({"exec_id": proc.exec_id, "pid": proc.pid})
                    return
                lock = trio.Lock()

                async def pump(stream: Any, name: str) -> None:
                    while chunk := await stream.receive_some(65536):
                        async with lock:
                            await send({"stream": name,
                                        "data": chunk.decode(errors="replace")})

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump, proc.stdout, "stdout")
                    nursery.start_soon(pump, proc.stderr, "stderr")
                await send({"exit_code": await proc.wait()})
            finally:
                if not body.get("Detach"):
                    with trio.CancelScope(shield=True):
                        if proc.status is None:
                            with contextlib.suppress(rterrors.ContainerRuntimeError):
                                await proc.kill()
                await proc.aclose()

        return StreamResponse(produce)

    async def top(self, req: Request) -> Response:
        rec = self._get(req.params["id"])
        try:
            procs = await self._c().rt.top(rec.id)
        except rterrors.ContainerRuntimeError as exc:
            raise HTTPError(409, str(exc)) from None
        return Response({"Titles": ["UID", "PID", "PPID", "CMD"],
                         "Processes": [[p.user, str(p.pid), str(p.ppid), p.command]
                                       for p in procs]})

    async def stats(self, req: Request) -> Response:
        """Cgroup usage of a running container (cpu ns, memory, pids), from the runtime."""
        rec = self._get(req.params["id"])
        if rec.state not in ("running", "paused"):
            raise HTTPError(409, f"container {rec.name} is not running")
        try:
            st = await self._c().rt.stats(rec.id)
        except rterrors.ContainerRuntimeError as exc:
            raise HTTPError(500, f"stats of {rec.name}: {exc}") from None
        return Response({"id": rec.id, "name": rec.name, "service": rec.service,
                         "read": time.time(), "cpu_usage_ns": st.cpu_usage_ns,
                         "online_cpus": os.cpu_count() or 1,
                         "memory_usage": st.memory_working_set or st.memory_usage,
                         "memory_limit": st.memory_limit, "pids": st.pids_current})

    async def wait(self, req: Request) -> Response:
        rec = self._get(req.params["id"])
        code = await self._c().wait_exit(rec.id)
        return Response({"StatusCode": code})

    # ------------------------------------------------------------------ routes

    def add_routes(self, r: Router) -> None:
        def c() -> Containers:
            return self._c()

        async def start(req: Request) -> Response:
            return await self._verb(req, c().start)

        async def stop(req: Request) -> Response:
            return await self._verb(req, c().stop, _float(req.arg("t")))

        async def restart(req: Request) -> Response:
            return await self._verb(req, c().restart, _float(req.arg("t")))

        async def kill(req: Request) -> Response:
            return await self._verb(req, c().kill, req.arg("signal") or "SIGKILL")

        async def pause(req: Request) -> Response:
            return await self._verb(req, c().pause)

        async def unpause(req: Request) -> Response:
            return await self._verb(req, c().unpause)

        async def remove(req: Request) -> Response:
            rec = self._get(req.params["id"])
            backend = self._backend()
            if rec.state in ("running", "paused", "restarting") and not req.flag("force"):
                raise HTTPError(409, f"cannot remove container {rec.name}: it is {rec.state}; "
                                "stop it first or use --force")
            await backend.remove_container(rec.id, volumes=req.flag("v"))
            return Response(None, status=204)

        async def lifecycle_start(req: Request) -> StreamResponse:
            return await self._lifecycle(req, "start")

        async def lifecycle_stop(req: Request) -> StreamResponse:
            return await self._lifecycle(req, "stop")

        async def lifecycle_restart(req: Request) -> StreamResponse:
            return await self._lifecycle(req, "restart")

        r.add("POST", "/projects/{name}/up", self.up)
        r.add("POST", "/projects/{name}/down", self.down)
        r.add("POST", "/projects/{name}/run", self.run_oneoff)
        r.add("POST", "/projects/{name}/start", lifecycle_start)
        r.add("POST", "/projects/{name}/stop", lifecycle_stop)
        r.add("POST", "/projects/{name}/restart", lifecycle_restart)
        r.add("GET", "/projects/{name}/logs", self.project_logs)
        r.add("POST", "/containers/{id}/start", start)
        r.add("POST", "/containers/{id}/stop", stop)
        r.add("POST", "/containers/{id}/restart", restart)
        r.add("POST", "/containers/{id}/kill", kill)
        r.add("POST", "/containers/{id}/pause", pause)
        r.add("POST", "/containers/{id}/unpause", unpause)
        r.add("DELETE", "/containers/{id}", remove)
        r.add("GET", "/containers/{id}/logs", self.container_logs)
        r.add("GET", "/containers/{id}/top", self.top)
        r.add("POST", "/containers/{id}/exec", self.exec_)
        r.add("POST", "/containers/{id}/wait", self.wait)
        r.add("GET", "/containers/{id}/stats", self.stats)


def _run_volume(project: Project, spec: str) -> Any:
    """``run -v SRC:DST[:ro|rw]`` -> a bind (SRC a path) or a named volume of the project."""
    from pycompose.compose.model import ServiceVolume  # noqa: PLC0415

    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        raise HTTPError(400, f"run -v {spec!r}: use SRC:DST[:ro|rw] with an absolute DST")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise HTTPError(400, f"run -v {spec!r}: mode must be ro or rw")
    if src.startswith(("/", ".", "~")):
        path = os.path.normpath(os.path.join(project.working_dir, os.path.expanduser(src)))
        return ServiceVolume(type="bind", source=path, target=dst, read_only=mode == "ro")
    if src not in project.volumes:
        raise HTTPError(400, f"run -v {spec!r}: volume {src!r} is not declared in the project")
    return ServiceVolume(type="volume", source=src, target=dst, read_only=mode == "ro")


def _run_port(spec: str) -> Any:
    """``run -p [[IP:]HOST:]CONTAINER[/PROTO]`` -> a published port."""
    from pycompose.compose.model import Port  # noqa: PLC0415

    text, _, proto = spec.partition("/")
    parts = text.rsplit(":", 2)
    try:
        target = int(parts[-1])
    except ValueError:
        raise HTTPError(400, f"run -p {spec!r}: container port must be a number") from None
    published = parts[-2] if len(parts) >= 2 and parts[-2] else None
    host_ip = parts[0] if len(parts) == 3 and parts[0] else None
    return Port(target=target, published=published, host_ip=host_ip, protocol=proto or "tcp")


def _time_arg(value: str | None) -> str | float | None:
    """``since``/``until``: Unix seconds (as Docker sends them) or RFC 3339 text."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return value


async def _first(events: list[trio.Event]) -> None:
    """Return as soon as any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        async def wait(ev: trio.Event) -> None:
            await ev.wait()
            nursery.cancel_scope.cancel()

        for ev in events:
            nursery.start_soon(wait, ev)


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None
