"""The engine's implementation of :class:`pycompose.compose.backend.Backend`.

Containers go through :class:`~pycompose.engine.containers.Containers` (the
runtime), volumes through the runtime's volume directories, images through
the image store, networks through :class:`~pycompose.engine.networks.Networks`
(bridge, firewall, embedded DNS; only recorded when no ``networks`` is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from pycompose.compose.backend import Observed, ObservedContainer
from pycompose.compose.hashing import config_hash
from pycompose.compose.model import Project, Service
from pycompose.engine.containers import Containers
from pycompose.engine.specs import ImageInfo, volume_name
from pycompose.engine.store import NetworkRecord, Store, VolumeRecord
from pycompose.runtime import errors as rterrors
from pycompose.runtime.spec import ImageDefaults

#: kv key prefix: anonymous volumes of a removed container, until a recreate takes them
PENDING_VOLUMES = "handed-over-volumes:"


async def collect_handed_over(store: Store, root: Path) -> list[str]:
    """Remove the anonymous volumes of removed containers that no container took over
    (an engine that died mid-recreate, or ``rm``/``down`` without ``-v``, whose
    anonymous volumes nothing can reach any more). At engine start; returns them."""
    from pycompose.runtime.volumes import remove_volume  # noqa: PLC0415

    removed = []
    for key, volumes in sorted((await store.docs_with_prefix(PENDING_VOLUMES)).items()):
        for name in sorted(set(volumes.values())):
            if not await store.volume_users(name):
                await trio.to_thread.run_sync(remove_volume, str(root), name)
                removed.append(name)
        await store.delete_doc(key)
    return removed


class EngineBackendError(Exception):
    """A step of convergence failed for a reason the user can fix; the message says how."""


@dataclass(frozen=True)
class ResolvedImage:
    info: ImageInfo
    healthcheck: Any  # runtime.images.config.Healthcheck | None


class ImageResolver:
    """Image name -> layers and config, from the image store under ``<root>/images``."""

    def __init__(self, root: Path) -> None:
        self.root = root / "images"
        self._limiter = trio.CapacityLimiter(4)

    async def __call__(self, ref: str) -> ResolvedImage:
        from pycompose.runtime.images import ImageStore  # noqa: PLC0415

        def get() -> ResolvedImage:
            image = ImageStore(self.root).get(ref)
            return ResolvedImage(
                info=ImageInfo(id=image.id, layers=tuple(str(p) for p in image.layer_dirs),
                               defaults=ImageDefaults.from_config(image.config.config)),
                healthcheck=image.config.config.healthcheck)

        try:
            return await trio.to_thread.run_sync(get, limiter=self._limiter)
        except rterrors.ImageNotFoundError:
            raise rterrors.ImageNotFoundError(
                f"image {ref!r} is not in the image store: pull it (`pycompose pull`), or "
                f"import it with `pycompose image import ROOTFS.tar {ref}` or "
                f"`pycompose image load -i ARCHIVE`") from None


def _plain_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}


class EngineBackend:
    """One convergence run's view of the engine (a fresh one per ``up``/``down``)."""

    def __init__(self, containers: Containers, store: Store, root: Path,
                 networks: Any = None) -> None:
        self.networks = networks
        self.containers = containers
        self.store = store
        self.root = root
        self._inherited: dict[str, dict[str, str]] = {}

    async def observe(self, project: Project) -> Observed:
        recs = self.containers.of_project(project.name)
        networks = await self.store.list_networks(project.name)
        volumes = await self.store.list_volumes(project.name)
        return Observed(
            containers=tuple(ObservedContainer(
                id=r.id, name=r.name, service=r.service, number=r.number, state=r.state,
                config_hash=r.config_hash, config=_plain_config(r.config),
                exit_code=r.exit_code, health=r.health, oneoff=r.oneoff,
                image_id=str(r.config.get("_image_id", ""))) for r in recs),
            networks=frozenset(n.key for n in networks),
            volumes=frozenset(v.key for v in volumes if not v.anonymous and v.key),
        )

    # ---- networks (recorded; see module docstring)

    async def create_network(self, project: Project, key: str) -> None:
        if self.networks is not None:
            await self.networks.ensure(project, key)
            return
        net = project.networks.get(key)
        name = net.name if net is not None else f"{project.name}_{key}"
        await self.store.put_network(NetworkRecord(
            name=name, project=project.name, key=key,
            driver=(net.driver if net and net.driver else "bridge"),
            internal=bool(net and net.internal),
            config={"wired": False}))

    async def remove_network(self, project: Project | None, key: str) -> None:
        if self.networks is not None and project is not None:
            await self.networks.remove(project.name, key)
            return
        for n in await self.store.list_networks():
            if n.key == key and (project is None or n.project == project.name):
                await self.store.remove_network(n.name)

    # ---- volumes

    async def create_volume(self, project: Project, key: str) -> None:
        from pycompose.runtime.volumes import ensure_volume, inspect_volume  # noqa: PLC0415

        vol = project.volumes[key]
        name = volume_name(project, key)
        if vol.external:
            try:
                await trio.to_thread.run_sync(inspect_volume, str(self.root), name)
            except rterrors.ContainerError:
                raise EngineBackendError(
                    f"external volume {name!r} (volumes.{key}) does not exist; create it "
                    f"first or drop `external: true`") from None
            return
        labels = {"com.docker.compose.project": project.name,
                  "com.docker.compose.volume": key, **dict(vol.labels)}
        info = await trio.to_thread.run_sync(lambda: ensure_volume(str(self.root), name, labels))
        await self.store.put_volume(VolumeRecord(name=name, project=project.name, key=key,
                                                 path=info.path, labels=labels))

    async def remove_volume(self, project: Project | None, key: str) -> None:
        from pycompose.runtime.volumes import remove_volume  # noqa: PLC0415

        for v in await self.store.list_volumes():
            if v.key == key and (project is None or v.project == project.name):
                in_use = await self.store.volume_users(v.name)
                if in_use:
                    raise EngineBackendError(f"volume {v.name} is in use by {', '.join(in_use)}")
                await trio.to_thread.run_sync(remove_volume, str(self.root), v.name)
                await self.store.remove_volume(v.name)

    # ---- containers

    async def create_container(self, project: Project, service: Service, number: int, *,
                               name: str, inherit_from: str | None = None) -> str:
        from pycompose.runtime.volumes import remove_volume  # noqa: PLC0415

        inherit = self._inherited.pop(inherit_from, {}) if inherit_from else {}
        rec = await self.containers.create(project, service, number, name=name,
                                           config_hash=config_hash(service), inherit=inherit)
        if inherit:
            # A volume the new container does not mount any more has no user left.
            kept = set((await self.containers.anonymous_volumes(rec.id)).values())
            for volume in set(inherit.values()) - kept:
                await trio.to_thread.run_sync(remove_volume, str(self.root), volume)
        if inherit_from:
            await self.store.delete_doc(PENDING_VOLUMES + inherit_from)
        return rec.id

    async def start_container(self, container_id: str) -> None:
        await self.containers.start(container_id)

    async def stop_container(self, container_id: str, grace: float | None = None) -> None:
        await self.containers.stop(container_id, grace)

    async def remove_container(self, container_id: str, *, volumes: bool = False) -> None:
        if not volumes:
            # A recreate takes them over; with ``volumes`` the runtime removes them.
            anonymous = await self.containers.anonymous_volumes(container_id)
            if anonymous:
                # Written down first: should the engine die before the new container
                # exists, the next one removes what nobody took over (collect_handed_over).
                await self.store.put_doc(PENDING_VOLUMES + container_id, anonymous)
            self._inherited[container_id] = anonymous
        await self.containers.remove(container_id, force=True, volumes=volumes)

    async def wait_healthy(self, container_id: str) -> None:
        await self.containers.wait_healthy(container_id)

    async def wait_ready(self, container_id: str) -> None:
        await self.containers.wait_ready(container_id)

    async def wait_exit(self, container_id: str) -> int:
        return await self.containers.wait_exit(container_id)

    async def failure_details(self, container_id: str) -> dict[str, Any]:
        rec = self.containers.records.get(container_id)
        if rec is None:
            return {}
        return await trio.to_thread.run_sync(self.containers.failure_details, rec)
