"""Containers as the engine sees them: records, lifecycle verbs, exits, restarts, health.

The runtime's supervisor process owns the container processes (they outlive
the engine); this module owns everything around them. For each container the
SQLite record is written through an in-memory cache, and every change wakes
the waiters of that container (``wait_healthy``/``wait_exit`` block on a
:class:`trio.Event`, never poll) and is published on the event bus.

* Exits arrive as runtime events; the restart policy decides, and a restart
  waits Docker's back-off in a task whose cancel scope ``stop`` cancels.
* Health probes run in one task per running container (``health.monitor``),
  through the runtime's exec, cancelled when the container stops.
* At engine start :meth:`Containers.run` subscribes to runtime events first,
  then reconciles the database with the supervisor's list: running containers
  get their health monitor back, exits that happened while the engine was
  down are recorded as such (and restart policies applied).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from pycompose.compose.backend import ConditionFailed
from pycompose.compose.model import Project, Service
from pycompose.compose.plan import service_config
from pycompose.engine import health as healthmod
from pycompose.engine.bus import EventBus
from pycompose.engine.health import HealthConfig, ProbeResult
from pycompose.engine.networks import Networks, uses_networks
from pycompose.engine.restart import RestartPolicy, next_delay
from pycompose.engine.specs import ImageInfo, container_spec
from pycompose.engine.store import ContainerRecord, Store
from pycompose.runtime import errors as rterrors
from pycompose.runtime.client import ExecResult, Runtime
from pycompose.runtime.spec import (
    ContainerInfo,
    ContainerStatus,
    EventKind,
    ExecSpec,
    ExitStatus,
    Mount,
    MountType,
)

log = logging.getLogger("pycompose.engine.containers")

RUNNING = ("running", "paused", "restarting")


def image_reference(project: Project, service: Service) -> str:
    """The image a service runs: ``image:``, else the one ``build:`` makes,
    ``<project>-<service>`` (docker compose's name)."""
    if service.image:
        return str(service.image)
    if service.build is not None:
        return f"{project.name}-{service.name}"
    raise rterrors.ImageError(f"service {service.name} has neither image nor build")


class ContainerStateConflict(Exception):
    """The container is not in a state that allows the operation (HTTP 409)."""


class NoSuchContainer(Exception):
    """HTTP 404."""


@dataclass
class _Live:
    """In-memory companions of a container record."""

    changed: trio.Event = field(default_factory=trio.Event)
    health_scope: trio.CancelScope | None = None
    restart_scope: trio.CancelScope | None = None
    backoff: float = 0.0
    exited_during_start: bool = False

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


def _iso_to_epoch(text: str) -> float | None:
    if not text:
        return None
    from pycompose.runtime.logs import parse_time  # noqa: PLC0415

    try:
        return float(parse_time(text)) / 1e9
    except (ValueError, TypeError):
        return None


class Containers:
    def __init__(self, store: Store, bus: EventBus, runtime: Runtime,
                 resolve_image: Any, networks: Networks | None = None) -> None:
        self.networks = networks
        self.store = store
        self.bus = bus
        self.rt = runtime
        self.resolve_image = resolve_image  # async (ref: str) -> ImageInfo (+ .healthcheck)
        self.records: dict[str, ContainerRecord] = {}
        self.live: dict[str, _Live] = {}
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ lifecycle of the manager

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            async with self.rt.events() as events:
                for rec in await self.store.list_containers():
                    self.records[rec.id] = rec
                    self.live[rec.id] = _Live()
                await self._reconcile()
                task_status.started()
                async for ev in events:
                    try:
                        await self._on_runtime_event(ev.kind, ev.id, ev.status)
                    except Exception:  # one bad event must not stop exit handling
                        log.exception("handling runtime event %s %s", ev.kind, ev.id)
            # Without its supervisor the engine can do nothing right: stop, so that the next
            # command starts a fresh engine, which starts a supervisor and adopts everything.
            raise rterrors.SupervisorError(
                "the connection to the runtime supervisor was lost; the engine stops (the "
                "next command starts a new one, which adopts the containers)")

    async def _reconcile(self) -> None:
        infos = {i.id: i for i in await self.rt.list()}
        # Containers the runtime has but the database does not: an engine killed between
        # the runtime's create and the database insert. Nobody can name them: remove them.
        for cid, stray in infos.items():
            if cid not in self.records and "com.docker.compose.project" in stray.labels:
                log.warning("removing container %s unknown to the engine's records", stray.name)
                with contextlib.suppress(rterrors.ContainerRuntimeError):
                    await self.rt.remove(cid, force=True, volumes=True)
        for cid, rec in list(self.records.items()):
            info = infos.get(cid)
            if info is None:
                await self._update(cid, state="dead", error="container lost by the runtime "
                                   "(was the host rebooted?)", pid=None)
                continue
            if info.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
                state = info.status.value
                await self._update(cid, state=state, pid=info.pid,
                                   started_at=_iso_to_epoch(info.started_at) or rec.started_at)
                self._dns_add(cid)
                if self.networks is not None and rec.config.get("_net"):
                    await self.networks.readopt(cid, rec.config["_net"])
                self._start_health(cid)
                log.info("adopted running container %s (pid %s)", rec.name, info.pid)
            elif info.status is ContainerStatus.EXITED and rec.state in RUNNING:
                status = info.exit or ExitStatus(code=None)
                log.info("container %s exited while the engine was down (%s)", rec.name,
                         status.code)
                await self._on_exit(cid, status, while_down=True)
            elif info.status is ContainerStatus.EXITED and rec.state == "exited":
                pass
            elif info.status is ContainerStatus.CREATED:
                await self._update(cid, state="created")

    # ------------------------------------------------------------------ records

    def get(self, ref: str) -> ContainerRecord:
        rec = self.records.get(ref)
        if rec is not None:
            return rec
        by_name = [r for r in self.records.values() if r.name == ref]
        if by_name:
            return by_name[0]
        by_prefix = [r for r in self.records.values() if r.id.startswith(ref)]
        if len(by_prefix) == 1 and ref:
            return by_prefix[0]
        raise NoSuchContainer(f"No such container: {ref}")

    def of_project(self, project: str, *, oneoff: bool | None = None) -> list[ContainerRecord]:
        out = [r for r in self.records.values() if r.project == project
               and (oneoff is None or r.oneoff == oneoff)]
        return sorted(out, key=lambda r: (r.service, r.oneoff, r.number))

    async def _update(self, cid: str, *, event: str | None = None, **changes: Any) -> None:
        rec = self.records[cid]
        for k, v in changes.items():
            setattr(rec, k, v)
        await self.store.update_container(cid, **changes)
        self.live.setdefault(cid, _Live()).notify()
        if event:
            self._publish(rec, event)

    def _dns_add(self, cid: str) -> None:
        rec = self.records[cid]
        if self.networks is not None and rec.config.get("_net"):
            self.networks.dns_add(cid, list(rec.config.get("_dns_names", [])),
                                  rec.config["_net"])

    def _dns_remove(self, cid: str) -> None:
        rec = self.records[cid]
        if self.networks is not None and rec.config.get("_net"):
            self.networks.dns_remove(cid, rec.config["_net"])

    def _publish(self, rec: ContainerRecord, action: str, **extra: Any) -> None:
        self.bus.emit("container", action, rec.id, name=rec.name, image=rec.image,
                      **{"com.docker.compose.project": rec.project,
                         "com.docker.compose.service": rec.service}, **extra)

    # ------------------------------------------------------------------ verbs

    async def create(self, project: Project, service: Service, number: int, *, name: str,
                     config_hash: str, oneoff: bool = False,
                     inherit: Mapping[str, str] | None = None,
                     override: Service | None = None) -> ContainerRecord:
        """Create (not start) a container for ``service``; ``inherit`` maps mount targets to
        anonymous volumes to reuse."""
        svc = override or service
        image_ref = image_reference(project, svc)
        image = await self.resolve_image(image_ref)
        cid = secrets.token_hex(32)
        inherited = _inheritable(svc, image.info, inherit or {})
        spec = container_spec(project, svc, cid=cid, name=name, number=number,
                              image=image.info, config_hash=config_hash, oneoff=oneoff,
                              anonymous=inherited)
        # The image's VOLUMEs: the runtime makes an anonymous volume for each one not
        # mounted otherwise; one carried over from the replaced container is named here.
        covered = {m.target for m in spec.mounts}
        extra = tuple(Mount(type=MountType.VOLUME, target=t, source=v)
                      for t, v in sorted(inherited.items()) if t not in covered)
        if extra:
            spec = dataclasses.replace(spec, mounts=spec.mounts + extra)
        if svc.secrets or svc.configs:
            from pycompose.engine import files  # noqa: PLC0415

            extra_mounts = await trio.to_thread.run_sync(
                files.prepare, Path(self.rt.root), cid, project, svc)
            spec = dataclasses.replace(spec, mounts=spec.mounts + extra_mounts)
        net: dict[str, Any] = {}
        mode = svc.network_mode or ""
        if self.networks is not None and uses_networks(svc):
            att = await self.networks.attach(project, svc, cid, name)
            net = att.to_json()
            spec = dataclasses.replace(spec, netns=att.netns, etc_hosts=att.hosts,
                                       resolv_conf=att.resolv)
        elif mode.startswith(("service:", "container:")):
            spec = dataclasses.replace(spec, netns=self._shared_netns(project, mode))
        hc = healthmod.health_config(svc, image.healthcheck)
        config = service_config(service)
        config["_health"] = hc.to_json() if hc else None
        config["_restart"] = str(RestartPolicy.of(svc))
        config["_argv"] = list(spec.entrypoint or image.info.defaults.entrypoint or ()) + list(
            spec.command if spec.command is not None else
            (image.info.defaults.cmd or () if spec.entrypoint is None else ()))
        config["_stop_grace"] = spec.stop_grace_period
        config["_net"] = net
        config["_image_id"] = image.info.id
        config["_dns_names"] = [name, service.name, *([svc.hostname] if svc.hostname else []),
                                cid[:12]]
        config["_publishers"] = net.get("ports", [])
        config["_hooks"] = {k: list(svc.extra.get(k) or ()) for k in ("post_start", "pre_stop")
                            if svc.extra.get(k)}
        try:
            info = await self.rt.create(spec)
        except BaseException:
            if net and self.networks is not None:
                with trio.CancelScope(shield=True):
                    await self.networks.detach(cid, net)
            raise
        rec = ContainerRecord(
            id=cid, name=name, project=project.name, service=service.name, number=number,
            config_hash=config_hash, image=image_ref, config=config,
            labels=dict(spec.labels), state="created", oneoff=oneoff,
            created_at=time.time())
        volumes = {m.target: m.source for m in spec.mounts if m.type.value == "volume"
                   and m.source}
        volumes.update(info.anonymous_volumes)
        try:
            await self.store.add_container(rec, volumes=volumes)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.rt.remove(cid, force=True)
            raise
        self.records[cid] = rec
        self.live[cid] = _Live()
        for warning in info.warnings:
            log.warning("%s: %s", name, warning)
        self._publish(rec, "create")
        return rec

    async def anonymous_volumes(self, cid: str) -> dict[str, str]:
        """Mount target -> anonymous volume name, for the volumes ``cid`` mounts (the
        runtime's record: it made them, or was handed them over at a recreate)."""
        try:
            return dict((await self.rt.inspect(cid)).anonymous_volumes)
        except rterrors.ContainerNotFoundError:
            return {}

    def _shared_netns(self, project: Project, mode: str) -> str:
        kind, _, target = mode.partition(":")
        for rec in self.records.values():
            if (kind == "service" and rec.project == project.name and rec.service == target
                    and not rec.oneoff) or (kind == "container" and rec.name == target):
                path = rec.config.get("_net", {}).get("netns")
                if path:
                    return str(path)
                raise rterrors.ContainerError(
                    f"network_mode: {mode}: {rec.name} has no network namespace of its own")
        raise rterrors.ContainerError(f"network_mode: {mode}: no such container")

    async def start(self, ref: str) -> ContainerRecord:
        rec = self.get(ref)
        if rec.state in ("running", "paused"):
            return rec
        live = self.live.setdefault(rec.id, _Live())
        if live.restart_scope is not None:
            live.restart_scope.cancel()
        await self._update(rec.id, stopped_by_user=False)
        await self._start(rec.id)
        if rec.config.get("_hooks", {}).get("post_start") and rec.state == "running":
            await self._run_hooks(rec, "post_start", raise_on_failure=True)
        return rec

    async def _start(self, cid: str) -> None:
        rec, live = self.records[cid], self.live[cid]
        live.exited_during_start = False
        try:
            info = await self.rt.start(cid)
        except rterrors.ContainerRuntimeError as exc:
            await self._update(cid, state="exited", error=str(exc), exit_code=127,
                               finished_at=time.time())
            raise
        hc = rec.config.get("_health")
        changes: dict[str, Any] = {"started_at": time.time(), "error": "",
                                   "health": "starting" if hc else ""}
        if not live.exited_during_start:
            changes.update(state="running", pid=info.pid, exit_code=None)
        await self._update(cid, event="start", **changes)
        if not live.exited_during_start:
            self._dns_add(cid)
            self._start_health(cid)

    async def stop(self, ref: str, grace: float | None = None) -> ContainerRecord:
        rec = self.get(ref)
        live = self.live.setdefault(rec.id, _Live())
        await self._update(rec.id, stopped_by_user=True)
        if live.restart_scope is not None:
            live.restart_scope.cancel()
        if rec.state == "restarting":
            await self._update(rec.id, state="exited")
        if rec.state not in ("running", "paused"):
            return rec
        if rec.config.get("_hooks", {}).get("pre_stop") and rec.state == "running":
            with trio.move_on_after(rec.config.get("_stop_grace") or 10.0):
                await self._run_hooks(rec, "pre_stop", raise_on_failure=False)
        self._publish(rec, "kill", signal=rec.labels.get("stop_signal", "SIGTERM"))
        with contextlib.suppress(rterrors.ContainerStateError):  # it exited meanwhile
            await self.rt.stop(rec.id, timeout=grace)
        await self._wait_state(rec.id, lambda r: r.state not in ("running", "paused"))
        self._publish(rec, "stop")
        return rec

    async def kill(self, ref: str, signal: str = "SIGKILL") -> ContainerRecord:
        rec = self.get(ref)
        if rec.state not in ("running", "paused"):
            raise ContainerStateConflict(f"container {rec.name} is not running")
        await self._update(rec.id, stopped_by_user=True)
        await self.rt.kill(rec.id, signal)
        self._publish(rec, "kill", signal=signal)
        return rec

    async def pause(self, ref: str) -> ContainerRecord:
        rec = self.get(ref)
        if rec.state != "running":
            raise ContainerStateConflict(f"container {rec.name} is not running")
        await self.rt.pause(rec.id)
        await self._update(rec.id, state="paused", event="pause")
        return rec

    async def unpause(self, ref: str) -> ContainerRecord:
        rec = self.get(ref)
        if rec.state != "paused":
            raise ContainerStateConflict(f"container {rec.name} is not paused")
        await self.rt.unpause(rec.id)
        await self._update(rec.id, state="running", event="unpause")
        return rec

    async def restart(self, ref: str, grace: float | None = None) -> ContainerRecord:
        rec = await self.stop(ref, grace)
        await self.start(rec.id)
        self._publish(rec, "restart")
        return rec

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        rec = self.get(ref)
        if rec.state in ("running", "paused", "restarting"):
            if not force:
                raise ContainerStateConflict(
                    f"cannot remove container {rec.name}: it is {rec.state}; stop it first "
                    "or force the removal")
            await self.stop(rec.id, grace=0)
        live = self.live.get(rec.id)
        if live is not None:
            for scope in (live.health_scope, live.restart_scope):
                if scope is not None:
                    scope.cancel()
        with contextlib.suppress(rterrors.ContainerNotFoundError):
            await self.rt.remove(rec.id, force=True, volumes=volumes)
        if self.networks is not None and rec.config.get("_net"):
            with trio.CancelScope(shield=True):
                await self.networks.detach(rec.id, rec.config["_net"])
        from pycompose.engine import files  # noqa: PLC0415

        await trio.to_thread.run_sync(files.remove, Path(self.rt.root), rec.id)
        await self.store.remove_container(rec.id)
        self.records.pop(rec.id, None)
        if live is not None:
            live.notify()
        self.live.pop(rec.id, None)
        self._publish(rec, "destroy")

    async def _run_hooks(self, rec: ContainerRecord, which: str, *,
                         raise_on_failure: bool) -> None:
        """``post_start``/``pre_stop`` hooks: exec'd in the container, in order."""
        for hook in rec.config.get("_hooks", {}).get(which, ()):
            command = hook.get("command") if isinstance(hook, dict) else hook
            argv = tuple(command) if isinstance(command, list | tuple) else (
                "/bin/sh", "-c", str(command))
            env = hook.get("environment") or {} if isinstance(hook, dict) else {}
            if isinstance(env, list):
                env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
            spec = ExecSpec(argv=argv, env={k: str(v) for k, v in env.items()},
                            user=hook.get("user") if isinstance(hook, dict) else None,
                            working_dir=hook.get("working_dir") if isinstance(hook, dict)
                            else None,
                            privileged=bool(hook.get("privileged")) if isinstance(hook, dict)
                            else False)
            result: ExecResult | None = None
            try:
                result = await self.rt.exec_run(rec.id, spec)
            except rterrors.ContainerRuntimeError as exc:
                message = str(exc)
            else:
                message = (result.stdout + result.stderr).decode(errors="replace").strip()
            self._publish(rec, f"exec_die: {which}",
                          exitCode=str(result.exit_code if result else -1))
            if result is None or result.exit_code != 0:
                text = (f"{which} hook {' '.join(argv)!r} of {rec.name} failed "
                        f"(exit {result.exit_code if result else '-'}): {message[-500:]}")
                if raise_on_failure:
                    raise rterrors.ContainerError(text)
                log.warning("%s", text)

    # ------------------------------------------------------------------ waits

    async def _wait_state(self, cid: str, predicate: Any) -> ContainerRecord:
        while True:
            rec = self.records.get(cid)
            if rec is None:
                raise NoSuchContainer(f"No such container: {cid}")
            if predicate(rec):
                return rec
            await self.live[cid].changed.wait()

    async def wait_exit(self, cid: str) -> int:
        rec = await self._wait_state(cid, lambda r: r.state in ("exited", "dead"))
        return rec.exit_code if rec.exit_code is not None else -1

    def _unhealthy_reason(self, rec: ContainerRecord) -> str:
        last = rec.health_log[-1] if rec.health_log else None
        if last is None:
            return "is unhealthy"
        output = str(last.get("Output", "")).strip().splitlines()
        tail = output[-1] if output else ""
        return f"is unhealthy (last probe: exit {last.get('ExitCode')}" + (
            f", {tail!r})" if tail else ")")

    async def wait_healthy(self, cid: str) -> None:
        rec = self.records[cid]
        if not rec.config.get("_health"):
            raise ConditionFailed(rec.name, "has no healthcheck, so it cannot become healthy "
                                  "(depends_on condition service_healthy)")
        rec = await self._wait_state(cid, lambda r: r.health in ("healthy", "unhealthy")
                                     or r.state in ("exited", "dead"))
        if rec.health == "healthy" and rec.state in RUNNING:
            return
        if rec.state in ("exited", "dead"):
            raise ConditionFailed(rec.name, f"exited with code {rec.exit_code} before it was "
                                  "healthy", details=await self._details(rec))
        raise ConditionFailed(rec.name, self._unhealthy_reason(rec),
                              details=await self._details(rec))

    async def wait_ready(self, cid: str) -> None:
        rec = self.records[cid]
        if rec.config.get("_health"):
            if rec.state in ("exited",) and rec.exit_code == 0:
                return
            await self.wait_healthy(cid)
            return
        if rec.state in ("exited", "dead"):
            if rec.exit_code == 0:
                return  # a one-shot that finished counts as ready
            raise ConditionFailed(rec.name, f"exited with code {rec.exit_code}",
                                  details=await self._details(rec))

    async def _details(self, rec: ContainerRecord) -> dict[str, Any]:
        return await trio.to_thread.run_sync(self.failure_details, rec)

    def failure_details(self, rec: ContainerRecord) -> dict[str, Any]:
        from pycompose.runtime.logs import read_logs  # noqa: PLC0415

        try:
            lines = [e.text.rstrip("\n") for e in read_logs(self.rt.log_path(rec.id), tail=5)]
        except OSError:
            lines = []
        return {"container": rec.name, "exit_code": rec.exit_code,
                "probes": [p.get("Output", "") for p in rec.health_log[-3:]],
                "log_tail": lines}

    # ------------------------------------------------------------------ exits and restarts

    async def _on_runtime_event(self, kind: EventKind, cid: str, status: ExitStatus | None
                                ) -> None:
        if cid not in self.records:
            return
        if kind is EventKind.EXITED:
            await self._on_exit(cid, status or ExitStatus(code=None))
        elif kind is EventKind.OOM:
            self._publish(self.records[cid], "oom")

    async def _on_exit(self, cid: str, status: ExitStatus, *, while_down: bool = False) -> None:
        rec, live = self.records[cid], self.live.setdefault(cid, _Live())
        live.exited_during_start = True
        if live.health_scope is not None:
            live.health_scope.cancel()
            live.health_scope = None
        self._dns_remove(cid)
        code = status.code if status.code is not None else -1
        finished = _iso_to_epoch(status.exited_at) or time.time()
        ran_for = finished - (rec.started_at or finished)
        await self._update(cid, state="exited", exit_code=code, oom_killed=status.oom_killed,
                           finished_at=finished, pid=None,
                           error="exit status lost while the engine was down"
                           if status.code is None else "", event="die")
        policy = RestartPolicy.parse(rec.config.get("_restart"))
        if policy.should_restart(code, rec.restart_count, stopped_by_user=rec.stopped_by_user):
            live.backoff = next_delay(live.backoff, ran_for)
            assert self._nursery is not None
            self._nursery.start_soon(self._restart_after, cid, live.backoff)

    async def _restart_after(self, cid: str, delay: float) -> None:
        live = self.live.get(cid)
        if live is None:
            return
        with trio.CancelScope() as scope:
            live.restart_scope = scope
            await self._update(cid, state="restarting")
            await trio.sleep(delay)
            rec = self.records.get(cid)
            if rec is None or rec.stopped_by_user:
                return
            await self._update(cid, restart_count=rec.restart_count + 1)
            try:
                await self._start(cid)
                # Hooks belong to every start, as with docker: a restart runs them too
                # (a failure is logged; nobody waits on this start to report it to).
                if rec.config.get("_hooks", {}).get("post_start") and rec.state == "running":
                    await self._run_hooks(rec, "post_start", raise_on_failure=False)
            except rterrors.ContainerRuntimeError as exc:
                log.warning("restart of %s failed: %s", rec.name, exc)
            except Exception:
                log.exception("restart of %s failed", rec.name)
        if live.restart_scope is scope:
            live.restart_scope = None

    # ------------------------------------------------------------------ health

    def _start_health(self, cid: str) -> None:
        rec, live = self.records[cid], self.live.setdefault(cid, _Live())
        hc = rec.config.get("_health")
        if not hc or self._nursery is None:
            return
        if live.health_scope is not None:
            live.health_scope.cancel()
        scope = trio.CancelScope()
        live.health_scope = scope
        self._nursery.start_soon(self._health_task, cid, HealthConfig.from_json(hc), scope)

    async def _health_task(self, cid: str, config: HealthConfig, scope: trio.CancelScope
                           ) -> None:
        async def run_probe(argv: tuple[str, ...]) -> tuple[int, str]:
            try:
                result = await self.rt.exec_run(cid, ExecSpec(argv=argv))
            except rterrors.ContainerRuntimeError as exc:
                return -1, f"probe could not run: {exc}"
            out = (result.stdout + result.stderr).decode(errors="replace")
            return result.exit_code, out

        async def report(status: str, probes: list[ProbeResult]) -> None:
            rec = self.records.get(cid)
            if rec is None:
                return
            before = rec.health
            await self._update(cid, health=status, health_log=[p.to_json() for p in probes])
            if status != before and status != "starting":
                self._publish(rec, f"health_status: {status}")

        with scope:
            try:
                await healthmod.monitor(config, run_probe, report)
            except Exception:  # a broken probe loop must not take the engine down
                log.exception("health monitor of %s failed", cid[:12])


def record_from_info(info: ContainerInfo) -> dict[str, Any]:
    """The parts of a runtime ContainerInfo the engine records (for inspect)."""
    return {"pid": info.pid, "state": info.status.value}


def _inheritable(service: Service, image: ImageInfo,
                 inherit: Mapping[str, str]) -> dict[str, str]:
    """The replaced container's anonymous volumes the new one mounts at the same target
    (its own anonymous mounts and the image's VOLUMEs not otherwise mounted)."""
    mounted = {v.target for v in service.volumes if v.type != "volume" or v.source}
    targets = {v.target for v in service.volumes if v.type == "volume" and not v.source}
    targets |= {t for t in image.defaults.volumes if t not in mounted}
    return {t: name for t, name in inherit.items() if t in targets}
