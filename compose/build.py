"""Stage: the resolved canonical document -> the immutable :class:`~.model.Project`.

Pure data binding: every value is already checked and in long form. Service
keys without a typed field go to ``Service.extra`` (read-only), ``x-*`` keys
to ``extensions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .model import (
    BindOptions,
    Build,
    Dependency,
    Deploy,
    EnvFile,
    FileObject,
    FileReference,
    FrozenDict,
    Healthcheck,
    Ipam,
    IpamPool,
    Logging,
    Network,
    Port,
    Project,
    Resources,
    RestartPolicy,
    Service,
    ServiceNetwork,
    ServiceVolume,
    TmpfsOptions,
    Ulimit,
    Volume,
    VolumeOptions,
    freeze,
)

__all__ = ["build_project", "build_service", "project_from_record"]

_SERVICE_FIELDS = {f.name for f in fields(Service)} - {"name", "extra", "extensions"}
_CONVERTED = {
    "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "depends_on", "networks", "healthcheck", "deploy", "logging", "secrets", "configs",
    "ulimits", "stop_grace_period", "labels", "annotations", "sysctls", "cpus",
}


def _fm(value: Any) -> FrozenDict[str, Any]:
    return FrozenDict((str(k), freeze(v)) for k, v in (value or {}).items())


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(freeze(v) for v in (value or ()))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _build(b: Mapping[str, Any]) -> Build:
    known = {"context", "dockerfile", "dockerfile_inline", "args", "target", "labels",
             "network", "shm_size", "extra_hosts", "platforms", "tags", "no_cache", "pull"}
    return Build(
        context=b["context"], dockerfile=b.get("dockerfile"),
        dockerfile_inline=b.get("dockerfile_inline"), args=_fm(b.get("args")),
        target=b.get("target"), labels=_fm(b.get("labels")), network=b.get("network"),
        shm_size=b.get("shm_size"), extra_hosts=_tuple(b.get("extra_hosts")),
        platforms=_tuple(b.get("platforms")), tags=_tuple(b.get("tags")),
        no_cache=bool(b.get("no_cache")), pull=bool(b.get("pull")),
        extra=_fm({k: v for k, v in b.items() if k not in known}),
    )


def _port(p: Mapping[str, Any]) -> Port:
    return Port(target=int(p["target"]), published=p.get("published"), host_ip=p.get("host_ip"),
                protocol=p.get("protocol") or "tcp", mode=p.get("mode") or "ingress",
                name=p.get("name"), app_protocol=p.get("app_protocol"))


def _volume(v: Mapping[str, Any]) -> ServiceVolume:
    bind = v.get("bind")
    vol = v.get("volume")
    tmpfs = v.get("tmpfs")
    return ServiceVolume(
        type=v["type"], target=v["target"], source=v.get("source") or None,
        read_only=bool(v.get("read_only")), consistency=v.get("consistency"),
        bind=BindOptions(propagation=bind.get("propagation"),
                         create_host_path=bool(bind.get("create_host_path", False)),
                         selinux=bind.get("selinux"), recursive=bind.get("recursive"))
        if bind is not None else None,
        volume=VolumeOptions(nocopy=bool(vol.get("nocopy")), subpath=vol.get("subpath"))
        if vol is not None else None,
        tmpfs=TmpfsOptions(size=tmpfs.get("size"), mode=_opt_int(tmpfs.get("mode")))
        if tmpfs is not None else None,
        image_subpath=(v.get("image") or {}).get("subpath"),
    )


def _healthcheck(h: Mapping[str, Any]) -> Healthcheck:
    test = h.get("test")
    return Healthcheck(
        test=tuple(str(t) for t in test) if test is not None else None,
        interval=h.get("interval"), timeout=h.get("timeout"),
        start_period=h.get("start_period"), start_interval=h.get("start_interval"),
        retries=h.get("retries"), disable=bool(h.get("disable")),
    )


def _resources(r: Mapping[str, Any] | None) -> Resources | None:
    if r is None:
        return None
    return Resources(cpus=r.get("cpus"), memory=r.get("memory"), pids=r.get("pids"),
                     devices=_tuple(r.get("devices")))


def _deploy(d: Mapping[str, Any]) -> Deploy:
    res = d.get("resources") or {}
    rp = d.get("restart_policy")
    known = {"mode", "replicas", "labels", "resources", "restart_policy"}
    return Deploy(
        mode=d.get("mode"), replicas=d.get("replicas"), labels=_fm(d.get("labels")),
        limits=_resources(res.get("limits")), reservations=_resources(res.get("reservations")),
        restart_policy=RestartPolicy(condition=rp.get("condition"), delay=rp.get("delay"),
                                     max_attempts=rp.get("max_attempts"),
                                     window=rp.get("window")) if rp is not None else None,
        extra=_fm({k: v for k, v in d.items() if k not in known}),
    )


def _service_network(n: Mapping[str, Any] | None) -> ServiceNetwork | None:
    if n is None:
        return None
    return ServiceNetwork(
        aliases=_tuple(n.get("aliases")), ipv4_address=n.get("ipv4_address"),
        ipv6_address=n.get("ipv6_address"), link_local_ips=_tuple(n.get("link_local_ips")),
        mac_address=n.get("mac_address"), priority=_opt_int(n.get("priority")),
        gw_priority=_opt_int(n.get("gw_priority")), driver_opts=_fm(n.get("driver_opts")),
        interface_name=n.get("interface_name"),
    )


def _file_ref(r: Mapping[str, Any]) -> FileReference:
    return FileReference(source=r["source"], target=r.get("target"),
                         uid=None if r.get("uid") is None else str(r["uid"]),
                         gid=None if r.get("gid") is None else str(r["gid"]),
                         mode=r.get("mode"))


def build_service(name: str, s: Mapping[str, Any]) -> Service:
    """One canonical service dict (environment already resolved) -> :class:`Service`."""
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in s.items():
        if key.startswith("x-"):
            extensions[key] = value
        elif key in _CONVERTED:
            continue
        elif key in _SERVICE_FIELDS:
            kwargs[key] = tuple(freeze(v) for v in value) if isinstance(value, list) \
                else freeze(value)
        else:
            extra[key] = value
    cmd, ep = s.get("command"), s.get("entrypoint")
    return Service(
        name=name,
        build=_build(s["build"]) if s.get("build") else None,
        command=tuple(str(c) for c in cmd) if cmd is not None else None,
        entrypoint=tuple(str(c) for c in ep) if ep is not None else None,
        environment=_fm(s.get("environment")),
        env_file=tuple(EnvFile(path=e["path"], required=bool(e.get("required", True)),
                               format=e.get("format")) for e in s.get("env_file") or ()),
        ports=tuple(_port(p) for p in s.get("ports") or ()),
        expose=tuple(str(e) for e in s.get("expose") or ()),
        volumes=tuple(_volume(v) for v in s.get("volumes") or ()),
        depends_on=FrozenDict(
            (dep, Dependency(condition=d.get("condition", "service_started"),
                             required=bool(d.get("required", True)),
                             restart=bool(d.get("restart", False))))
            for dep, d in (s.get("depends_on") or {}).items()),
        networks=FrozenDict((n, _service_network(v)) for n, v in (s.get("networks") or {}).items()),
        healthcheck=_healthcheck(s["healthcheck"]) if s.get("healthcheck") is not None else None,
        deploy=_deploy(s["deploy"]) if s.get("deploy") is not None else None,
        logging=Logging(driver=s["logging"].get("driver"),
                        options=_fm(s["logging"].get("options")))
        if s.get("logging") is not None else None,
        secrets=tuple(_file_ref(r) for r in s.get("secrets") or ()),
        configs=tuple(_file_ref(r) for r in s.get("configs") or ()),
        ulimits=FrozenDict((k, Ulimit(soft=int(v["soft"]), hard=int(v["hard"])))
                           for k, v in (s.get("ulimits") or {}).items()),
        stop_grace_period=s.get("stop_grace_period"),
        labels=_fm(s.get("labels")),
        annotations=_fm(s.get("annotations")),
        sysctls=_fm(s.get("sysctls")),
        cpus=None if s.get("cpus") is None else float(s["cpus"]),
        extra=_fm(extra),
        extensions=_fm(extensions),
        **kwargs,
    )


def _network(key: str, n: Mapping[str, Any], project: str) -> Network:
    ipam = n.get("ipam")
    external = bool(n.get("external"))
    return Network(
        name=n.get("name") or (key if external else f"{project}_{key}"),
        driver=n.get("driver"), driver_opts=_fm(n.get("driver_opts")),
        ipam=Ipam(driver=ipam.get("driver"),
                  config=tuple(IpamPool(subnet=p.get("subnet"), gateway=p.get("gateway"),
                                        ip_range=p.get("ip_range"),
                                        aux_addresses=_fm(p.get("aux_addresses")))
                               for p in ipam.get("config") or ()),
                  options=_fm(ipam.get("options"))) if ipam is not None else None,
        external=external, internal=bool(n.get("internal")),
        attachable=bool(n.get("attachable")), enable_ipv4=n.get("enable_ipv4"),
        enable_ipv6=n.get("enable_ipv6"), labels=_fm(n.get("labels")),
        extensions=_fm({k: v for k, v in n.items() if k.startswith("x-")}),
    )


def _volume_top(key: str, v: Mapping[str, Any], project: str) -> Volume:
    external = bool(v.get("external"))
    return Volume(
        name=v.get("name") or (key if external else f"{project}_{key}"),
        driver=v.get("driver"), driver_opts=_fm(v.get("driver_opts")), external=external,
        labels=_fm(v.get("labels")),
        extensions=_fm({k: x for k, x in v.items() if k.startswith("x-")}),
    )


def _file_object(key: str, o: Mapping[str, Any], project: str) -> FileObject:
    external = bool(o.get("external"))
    known = {"name", "file", "environment", "content", "external", "labels"}
    return FileObject(
        name=o.get("name") or (key if external else f"{project}_{key}"),
        file=o.get("file"), environment=o.get("environment"), content=o.get("content"),
        external=external, labels=_fm(o.get("labels")),
        extra=_fm({k: v for k, v in o.items() if k not in known}),
    )


def build_project(doc: Mapping[str, Any], *, name: str, working_dir: str,
                  disabled: Mapping[str, Any] | None = None,
                  compose_files: tuple[str, ...] = (), profiles: tuple[str, ...] = (),
                  environment: Mapping[str, str] | None = None,
                  warnings: tuple[str, ...] = ()) -> Project:
    """Bind the final document (enabled services; ``disabled`` ones apart)."""
    return Project(
        name=name,
        working_dir=working_dir,
        services=FrozenDict((n, build_service(n, s))
                            for n, s in sorted((doc.get("services") or {}).items())),
        disabled_services=FrozenDict((n, build_service(n, s))
                                     for n, s in sorted((disabled or {}).items())),
        networks=FrozenDict((k, _network(k, v or {}, name))
                            for k, v in sorted((doc.get("networks") or {}).items())),
        volumes=FrozenDict((k, _volume_top(k, v or {}, name))
                           for k, v in sorted((doc.get("volumes") or {}).items())),
        secrets=FrozenDict((k, _file_object(k, v or {}, name))
                           for k, v in sorted((doc.get("secrets") or {}).items())),
        configs=FrozenDict((k, _file_object(k, v or {}, name))
                           for k, v in sorted((doc.get("configs") or {}).items())),
        extensions=_fm({k: v for k, v in doc.items() if k.startswith("x-")}),
        compose_files=compose_files,
        profiles=profiles,
        environment=FrozenDict(environment or {}),
        warnings=warnings,
    )


def project_from_record(record: Mapping[str, Any]) -> Project:
    """The Project that :func:`.serialize.project_to_record` (or :func:`.loader.load_record`)
    described."""
    return build_project(
        record["document"], name=record["name"], working_dir=record["working_dir"],
        disabled=record.get("disabled"), compose_files=tuple(record.get("compose_files") or ()),
        profiles=tuple(record.get("profiles") or ()), environment=record.get("environment"),
        warnings=tuple(record.get("warnings") or ()),
    )
