"""The immutable Project model: typed, frozen dataclasses built from the canonical document.

Everything here is already in long form: ports are one :class:`Port` per
published port (ranges expanded), volumes are :class:`ServiceVolume` with an
explicit ``type``, durations are seconds (``float``), byte sizes are ``int``,
``command``/``entrypoint`` are argument tuples. Mappings are :class:`FrozenDict`
(read-only ``dict``), sequences are tuples, so a Project can be shared between
tasks without copies.

Service keys that have no typed field yet are kept, canonical and read-only,
in ``Service.extra``; ``x-*`` keys are in ``extensions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A ``dict`` that refuses changes after construction (and is therefore hashable)."""

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("FrozenDict is read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: str(kv[0]))))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return self


def freeze(value: Any) -> Any:
    """Plain data -> the same data with read-only mappings and tuples."""
    if isinstance(value, Mapping):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def frozen_map(items: Iterable[tuple[K, V]] | Mapping[K, V] = ()) -> FrozenDict[K, V]:
    return FrozenDict(items.items() if isinstance(items, Mapping) else items)


def _empty() -> FrozenDict[Any, Any]:
    return FrozenDict()


# --------------------------------------------------------------------------- service parts


@dataclass(frozen=True, kw_only=True)
class Port:
    """One published (or exposed-only) port; ``published`` may be a host range ``"8000-8010"``."""

    target: int
    published: str | None = None
    host_ip: str | None = None
    protocol: str = "tcp"
    mode: str = "ingress"
    name: str | None = None
    app_protocol: str | None = None


@dataclass(frozen=True, kw_only=True)
class BindOptions:
    propagation: str | None = None
    create_host_path: bool = False
    selinux: str | None = None
    recursive: str | None = None


@dataclass(frozen=True, kw_only=True)
class VolumeOptions:
    nocopy: bool = False
    subpath: str | None = None


@dataclass(frozen=True, kw_only=True)
class TmpfsOptions:
    size: int | None = None
    mode: int | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceVolume:
    """A mount: ``bind`` (absolute host path), ``volume`` (named, or anonymous when no
    source), ``tmpfs``, ``npipe``, ``cluster`` or ``image``."""

    type: str
    target: str
    source: str | None = None
    read_only: bool = False
    consistency: str | None = None
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None
    image_subpath: str | None = None


@dataclass(frozen=True, kw_only=True)
class EnvFile:
    """One ``env_file`` entry (long form). The loader reads the files into ``environment``
    for enabled services; the entries stay for the record (and for disabled services)."""

    path: str
    required: bool = True
    format: str | None = None


@dataclass(frozen=True, kw_only=True)
class Dependency:
    """One ``depends_on`` entry (long form)."""

    condition: str = "service_started"
    required: bool = True
    restart: bool = False


CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


@dataclass(frozen=True, kw_only=True)
class Healthcheck:
    """``test`` is ``("CMD", ...)``, ``("CMD-SHELL", cmd)`` or ``("NONE",)``; times in seconds."""

    test: tuple[str, ...] | None = None
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None
    disable: bool = False


@dataclass(frozen=True, kw_only=True)
class Build:
    """``context`` is absolute for local paths (URLs are kept as given)."""

    context: str
    dockerfile: str | None = None
    dockerfile_inline: str | None = None
    args: FrozenDict[str, str | None] = field(default_factory=_empty)
    target: str | None = None
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    network: str | None = None
    shm_size: int | None = None
    extra_hosts: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    no_cache: bool = False
    pull: bool = False
    extra: FrozenDict[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None
    devices: tuple[FrozenDict[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    condition: str | None = None
    delay: float | None = None
    max_attempts: int | None = None
    window: float | None = None


@dataclass(frozen=True, kw_only=True)
class Deploy:
    mode: str | None = None
    replicas: int | None = None
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    limits: Resources | None = None
    reservations: Resources | None = None
    restart_policy: RestartPolicy | None = None
    extra: FrozenDict[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Ulimit:
    soft: int
    hard: int


@dataclass(frozen=True, kw_only=True)
class Logging:
    driver: str | None = None
    options: FrozenDict[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class ServiceNetwork:
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: tuple[str, ...] = ()
    mac_address: str | None = None
    priority: int | None = None
    gw_priority: int | None = None
    driver_opts: FrozenDict[str, str] = field(default_factory=_empty)
    interface_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileReference:
    """A service's use of a top-level secret or config."""

    source: str
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


# --------------------------------------------------------------------------- service


@dataclass(frozen=True, kw_only=True)
class Service:
    name: str
    image: str | None = None
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: FrozenDict[str, str | None] = field(default_factory=_empty)
    env_file: tuple[EnvFile, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    volumes: tuple[ServiceVolume, ...] = ()
    tmpfs: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    depends_on: FrozenDict[str, Dependency] = field(default_factory=_empty)
    links: tuple[str, ...] = ()
    external_links: tuple[str, ...] = ()
    networks: FrozenDict[str, ServiceNetwork | None] = field(default_factory=_empty)
    network_mode: str | None = None
    ipc: str | None = None
    pid: str | None = None
    uts: str | None = None
    healthcheck: Healthcheck | None = None
    restart: str | None = None
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    annotations: FrozenDict[str, str] = field(default_factory=_empty)
    stop_signal: str | None = None
    stop_grace_period: float | None = None
    init: bool | None = None
    tty: bool = False
    stdin_open: bool = False
    privileged: bool = False
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()
    sysctls: FrozenDict[str, str] = field(default_factory=_empty)
    ulimits: FrozenDict[str, Ulimit] = field(default_factory=_empty)
    mem_limit: int | None = None
    mem_reservation: int | None = None
    memswap_limit: int | None = None
    shm_size: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset: str | None = None
    pids_limit: int | None = None
    deploy: Deploy | None = None
    logging: Logging | None = None
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    profiles: tuple[str, ...] = ()
    pull_policy: str | None = None
    scale: int | None = None
    platform: str | None = None
    group_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    extra: FrozenDict[str, Any] = field(default_factory=_empty)
    extensions: FrozenDict[str, Any] = field(default_factory=_empty)

    @property
    def replicas(self) -> int:
        """How many containers ``up`` runs (``scale``, else ``deploy.replicas``, else 1)."""
        if self.scale is not None:
            return self.scale
        if self.deploy is not None and self.deploy.replicas is not None:
            return self.deploy.replicas
        return 1

    @property
    def limits(self) -> Resources:
        """Effective limits: ``mem_limit``/``cpus``/``pids_limit`` or their ``deploy`` twins
        (the loader rejects files where both are set and differ)."""
        d = self.deploy.limits if self.deploy and self.deploy.limits else Resources()
        return Resources(
            cpus=self.cpus if self.cpus is not None else d.cpus,
            memory=self.mem_limit if self.mem_limit is not None else d.memory,
            pids=self.pids_limit if self.pids_limit is not None else d.pids,
            devices=d.devices,
        )

    def dependencies(self) -> tuple[str, ...]:
        """Every service this one needs (depends_on, links, ``service:`` modes, volumes_from)."""
        from pycompose.compose.graph import service_dependencies  # noqa: PLC0415

        return tuple(sorted(service_dependencies(self)))


# --------------------------------------------------------------------------- top level


@dataclass(frozen=True, kw_only=True)
class IpamPool:
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: FrozenDict[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Ipam:
    driver: str | None = None
    config: tuple[IpamPool, ...] = ()
    options: FrozenDict[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Network:
    """A top-level network; ``name`` is the host-side name (``<project>_<key>`` unless set)."""

    name: str
    driver: str | None = None
    driver_opts: FrozenDict[str, str] = field(default_factory=_empty)
    ipam: Ipam | None = None
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv4: bool | None = None
    enable_ipv6: bool | None = None
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    extensions: FrozenDict[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Volume:
    name: str
    driver: str | None = None
    driver_opts: FrozenDict[str, str] = field(default_factory=_empty)
    external: bool = False
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    extensions: FrozenDict[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class FileObject:
    """A top-level secret or config: from a ``file``, an ``environment`` variable, inline
    ``content`` (configs), or ``external``."""

    name: str
    file: str | None = None
    environment: str | None = None
    content: str | None = None
    external: bool = False
    labels: FrozenDict[str, str] = field(default_factory=_empty)
    extra: FrozenDict[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, kw_only=True)
class Project:
    """A resolved project: only enabled services (profiles applied) are in ``services``."""

    name: str
    working_dir: str
    services: FrozenDict[str, Service] = field(default_factory=_empty)
    networks: FrozenDict[str, Network] = field(default_factory=_empty)
    volumes: FrozenDict[str, Volume] = field(default_factory=_empty)
    secrets: FrozenDict[str, FileObject] = field(default_factory=_empty)
    configs: FrozenDict[str, FileObject] = field(default_factory=_empty)
    extensions: FrozenDict[str, Any] = field(default_factory=_empty)
    disabled_services: FrozenDict[str, Service] = field(default_factory=_empty)
    compose_files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    environment: FrozenDict[str, str] = field(default_factory=_empty)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.services))

    def all_profiles(self) -> tuple[str, ...]:
        """Every profile named by any service, enabled or not (``config --profiles``)."""
        names = {p for s in (*self.services.values(), *self.disabled_services.values())
                 for p in s.profiles}
        return tuple(sorted(names))

    def service(self, name: str) -> Service:
        return self.services[name]
