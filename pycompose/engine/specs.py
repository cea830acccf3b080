"""A Compose service (plus its image) -> the runtime's :class:`ContainerSpec`.

Pure: no I/O, so every mapping rule is unit-tested. Labels follow docker
compose's (``com.docker.compose.project`` …) so tools that know them work.
Networks: the engine attaches services to their networks (:mod:`.networks`); without
the network library (``networks=None``) ``network_mode: host`` joins the host's namespace
and others get a namespace with only ``lo``, as :func:`network_warning` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pycompose import __version__
from pycompose.compose.model import Project, Service
from pycompose.errors import EngineError
from pycompose.runtime.spec import (
    ContainerSpec,
    Device,
    ImageDefaults,
    LogConfig,
    Mount,
    MountType,
    Resources,
    Security,
    Ulimit,
)

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
LABEL_WORKDIR = "com.docker.compose.project.working_dir"
LABEL_FILES = "com.docker.compose.project.config_files"
LABEL_VERSION = "com.docker.compose.version"
LABEL_IMAGE = "com.docker.compose.image"


class SpecError(EngineError):
    """The service asks for something this engine cannot do (yet); the message says what."""


@dataclass(frozen=True)
class ImageInfo:
    """What the spec needs of an image: its id, layer dirs and config defaults."""

    id: str
    layers: tuple[str, ...]
    defaults: ImageDefaults


def volume_name(project: Project, key: str) -> str:
    vol = project.volumes.get(key)
    return vol.name if vol is not None else f"{project.name}_{key}"


def network_mode(service: Service) -> str:
    mode = service.network_mode
    if mode in ("host", "none"):
        return str(mode)
    return "none"


def network_warning(service: Service) -> str | None:
    mode = service.network_mode
    if mode in ("host", "none"):
        return None
    return (f"service {service.name}: per-stack networks are not wired into the engine yet; "
            f"it runs in its own network namespace with only lo (use network_mode: host "
            f"to reach the host's network)")


def _parse_tmpfs(entry: str) -> Mount:
    target, _, opts = entry.partition(":")
    size = mode = None
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        if key == "size":
            from pycompose.compose.units import parse_bytes  # noqa: PLC0415

            size = parse_bytes(value)
        elif key == "mode":
            mode = int(value, 8)
    return Mount(type=MountType.TMPFS, target=target, tmpfs_size=size, tmpfs_mode=mode)


def mounts(project: Project, service: Service,
           anonymous: Mapping[str, str] | None = None) -> tuple[Mount, ...]:
    """The service's mounts; ``anonymous`` maps a target to an existing anonymous volume
    (carried over from the container being replaced)."""
    anonymous = anonymous or {}
    out: list[Mount] = []
    for v in service.volumes:
        if v.type == "bind":
            out.append(Mount(type=MountType.BIND, target=v.target, source=v.source or "",
                             read_only=v.read_only,
                             create_host_path=v.bind.create_host_path if v.bind else True))
        elif v.type == "volume":
            source = volume_name(project, v.source) if v.source else anonymous.get(v.target, "")
            out.append(Mount(type=MountType.VOLUME, target=v.target, source=source,
                             read_only=v.read_only,
                             nocopy=bool(v.volume and v.volume.nocopy)))
        elif v.type == "tmpfs":
            out.append(Mount(type=MountType.TMPFS, target=v.target,
                             tmpfs_size=v.tmpfs.size if v.tmpfs else None,
                             tmpfs_mode=v.tmpfs.mode if v.tmpfs else None))
        else:
            raise SpecError(f"service {service.name}: volume type {v.type!r} "
                            f"({v.target}) is not supported")
    out.extend(_parse_tmpfs(t) for t in service.tmpfs)
    return tuple(out)


def _security(service: Service) -> Security:
    no_new_privileges = False
    seccomp = "default"
    for opt in service.security_opt:
        key, sep, value = opt.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges":
            no_new_privileges = value in ("", "true") if sep else True
        elif key == "seccomp":
            seccomp = value or "default"
        elif key in ("label", "apparmor"):
            continue  # no SELinux/AppArmor here: accepted and ignored, as on such hosts
        else:
            raise SpecError(f"service {service.name}: unsupported security_opt {opt!r}")
    return Security(privileged=service.privileged, cap_add=tuple(service.cap_add),
                    cap_drop=tuple(service.cap_drop), no_new_privileges=no_new_privileges,
                    seccomp=seccomp)


def _resources(service: Service) -> Resources:
    limits = service.limits
    reservation = service.mem_reservation
    if reservation is None and service.deploy and service.deploy.reservations:
        reservation = service.deploy.reservations.memory
    return Resources(memory=limits.memory, memory_swap=service.memswap_limit,
                     memory_reservation=reservation, cpus=limits.cpus,
                     cpu_shares=service.cpu_shares, cpuset_cpus=service.cpuset,
                     pids_limit=limits.pids,
                     device_cgroup_rules=tuple(
                         str(r) for r in service.extra.get("device_cgroup_rules") or ()))


def _devices(service: Service) -> tuple[Device, ...]:
    """Compose ``devices:`` (``HOST[:CONTAINER[:PERMISSIONS]]`` or the long form)."""
    out = []
    for entry in service.extra.get("devices") or ():
        if isinstance(entry, Mapping):
            source, target = str(entry.get("source", "")), str(entry.get("target") or "")
            perms = str(entry.get("permissions") or "rwm")
        else:
            parts = str(entry).split(":")
            if len(parts) > 3 or not parts[0]:
                raise SpecError(f"service {service.name}: invalid device {entry!r} "
                                "(expected HOST[:CONTAINER[:PERMISSIONS]])")
            source = parts[0]
            target = parts[1] if len(parts) > 1 else ""
            perms = parts[2] if len(parts) > 2 else "rwm"
            if len(parts) == 2 and not parts[1].startswith("/"):
                target, perms = "", parts[1]  # HOST:PERMISSIONS
        if not perms or set(perms) - set("rwm"):
            raise SpecError(f"service {service.name}: device {entry!r}: permissions must be "
                            f"made of r, w and m, not {perms!r}")
        out.append(Device(source=source, target=target or source, permissions=perms))
    return tuple(out)


def _log_config(service: Service) -> LogConfig:
    opts = service.logging.options if service.logging else {}
    max_size = None
    if "max-size" in opts:
        from pycompose.compose.units import parse_bytes  # noqa: PLC0415

        max_size = parse_bytes(opts["max-size"])
    return LogConfig(max_size=max_size, max_file=int(opts.get("max-file", "1")))


def labels(project: Project, service: Service, number: int, config_hash: str, *,
           oneoff: bool = False, image: str = "") -> dict[str, str]:
    out = dict(service.labels)
    out.update({
        LABEL_PROJECT: project.name,
        LABEL_SERVICE: service.name,
        LABEL_NUMBER: str(number),
        LABEL_ONEOFF: "True" if oneoff else "False",
        LABEL_CONFIG_HASH: config_hash,
        LABEL_WORKDIR: project.working_dir,
        LABEL_FILES: ",".join(project.compose_files),
        LABEL_VERSION: __version__,
    })
    if image:
        out[LABEL_IMAGE] = image
    return out


def container_spec(project: Project, service: Service, *, cid: str, name: str, number: int,
                   image: ImageInfo, config_hash: str, oneoff: bool = False,
                   anonymous: Mapping[str, str] | None = None) -> ContainerSpec:
    if service.ipc not in (None, "private", "shareable"):
        raise SpecError(f"service {service.name}: ipc: {service.ipc} is not supported yet")
    if service.pid not in (None, ""):
        raise SpecError(f"service {service.name}: pid: {service.pid} is not supported yet")
    env = {k: v for k, v in service.environment.items() if v is not None}
    return ContainerSpec(
        id=cid,
        name=name,
        layers=image.layers,
        image=image.defaults,
        entrypoint=tuple(service.entrypoint) if service.entrypoint is not None else None,
        command=tuple(service.command) if service.command is not None else None,
        env=env,
        working_dir=service.working_dir,
        user=service.user,
        group_add=tuple(service.group_add),
        hostname=service.hostname or "",
        domainname=service.domainname or "",
        read_only=service.read_only,
        mounts=mounts(project, service, anonymous),
        netns=network_mode(service),
        init=bool(service.init),
        tty=bool(service.tty),
        stdin_open=bool(service.stdin_open),
        shm_size=service.shm_size or 64 * 1024 * 1024,
        ulimits=tuple(Ulimit(name=k, soft=u.soft, hard=u.hard)
                      for k, u in sorted(service.ulimits.items())),
        sysctls=dict(service.sysctls),
        stop_signal=service.stop_signal,
        stop_grace_period=service.stop_grace_period if service.stop_grace_period is not None
        else 10.0,
        security=_security(service),
        resources=_resources(service),
        devices=_devices(service),
        log=_log_config(service),
        labels=labels(project, service, number, config_hash, oneoff=oneoff,
                      image=service.image or ""),
    )
