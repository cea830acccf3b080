"""The model back to plain data and text, in the shape ``docker compose config`` prints.

:func:`project_to_dict` gives a canonical document (long forms, defaults
filled in, durations as seconds); :func:`to_output` makes it presentable
(durations as ``1m30s``, services sorted, ``$`` escaped as ``$$`` so the
output loads back to the same model); :func:`dump_yaml` / :func:`dump_json`
write it. Loading the output again gives an equal :class:`~.model.Project`.

:func:`project_to_record` is the whole Project as JSON-able data (the
document plus what the loader learnt on the way: files, working directory,
profiles, environment, disabled services, warnings), for a trip to another
process; :func:`~.build.project_from_record` turns it back into an equal
Project (``project_from_record(project_to_record(p)) == p``, every attribute).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from .model import Project, Service
from .units import format_duration

__all__ = ["dump_json", "dump_yaml", "project_to_dict", "project_to_record", "service_to_dict",
           "to_output"]

# Fields printed even when they hold their default value.
_ALWAYS = {"Dependency": {"condition", "required"}, "Port": {"mode", "protocol"},
           "Network": {"name"}, "Volume": {"name"}, "FileObject": {"name"},
           "ServiceVolume": {"type", "target"}, "Build": {"context"},
           "EnvFile": {"path", "required"}}
# Fields that are folded into their parent mapping.
_FLATTEN = {"extra", "extensions"}
_RENAME = {"ServiceVolume": {"image_subpath": ("image", "subpath")}}


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def to_plain(obj: Any) -> Any:
    """Dataclasses -> dicts without default-valued fields; tuples -> lists."""
    if is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj).__name__
        always = _ALWAYS.get(cls, set())
        renames = _RENAME.get(cls, {})
        out: dict[str, Any] = {}
        folded: dict[str, Any] = {}
        for f in fields(obj):
            if f.name == "name" and cls == "Service":
                continue
            value = getattr(obj, f.name)
            if f.name in _FLATTEN:
                folded.update({k: to_plain(v) for k, v in value.items()})
                continue
            if f.name not in always and value == _default(f):
                continue
            if f.name in renames:
                outer, inner = renames[f.name]
                out[outer] = {inner: to_plain(value)}
                continue
            out[f.name] = to_plain(value)
        if cls == "Deploy" and ("limits" in out or "reservations" in out):
            resources = {k: out.pop(k) for k in ("limits", "reservations") if k in out}
            out["resources"] = resources
        out.update(folded)
        return out
    if isinstance(obj, dict):
        return {k: to_plain(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def service_to_dict(service: Service) -> dict[str, Any]:
    """One service as a canonical mapping (keys sorted)."""
    plain = to_plain(service)
    if service.depends_on:
        deps = service.depends_on
        plain["depends_on"] = {n: to_plain(deps[n]) for n in sorted(deps)}
    if service.networks:
        plain["networks"] = {n: (to_plain(v) if v is not None else None)
                             for n, v in sorted(service.networks.items())}
    if service.environment:
        plain["environment"] = dict(sorted(service.environment.items()))
    return {k: plain[k] for k in sorted(plain)}


def project_to_dict(project: Project) -> dict[str, Any]:
    """The whole project (enabled services only), in ``config`` order."""
    out: dict[str, Any] = {"name": project.name}
    out["services"] = {n: service_to_dict(project.services[n]) for n in sorted(project.services)}
    for section in ("networks", "volumes", "secrets", "configs"):
        items = getattr(project, section)
        if items:
            out[section] = {k: to_plain(v) for k, v in sorted(items.items())}
    out.update({k: to_plain(v) for k, v in project.extensions.items()})
    return out


def project_to_record(project: Project) -> dict[str, Any]:
    """Every attribute of ``project`` as plain data (see :func:`.build.project_from_record`)."""
    return {
        "name": project.name,
        "working_dir": project.working_dir,
        "document": project_to_dict(project),
        "disabled": {n: service_to_dict(s) for n, s in sorted(project.disabled_services.items())},
        "compose_files": list(project.compose_files),
        "profiles": list(project.profiles),
        "environment": dict(project.environment),
        "warnings": list(project.warnings),
    }


_DURATIONS = {
    ("healthcheck", "interval"), ("healthcheck", "timeout"), ("healthcheck", "start_period"),
    ("healthcheck", "start_interval"), ("restart_policy", "delay"),
    ("restart_policy", "window"),
}


def _format(value: Any, parent: str | None, key: str | None, escape: bool) -> Any:
    if isinstance(value, dict):
        return {k: _format(v, key, k, escape) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, parent, key, escape) for v in value]
    if isinstance(value, float) and not isinstance(value, bool) and (
            (parent, key) in _DURATIONS or key == "stop_grace_period"):
        return format_duration(value)
    if escape and isinstance(value, str):
        return value.replace("$", "$$")
    return value


def to_output(doc: dict[str, Any], *, escape_dollars: bool = True) -> dict[str, Any]:
    """Durations as text, services sorted, ``$`` -> ``$$`` (for interpolated documents)."""
    out = dict(doc)
    services = out.get("services")
    if isinstance(services, dict):
        out["services"] = {n: ({k: services[n][k] for k in sorted(services[n])}
                               if isinstance(services[n], dict) else services[n])
                           for n in sorted(services)}
    formatted: dict[str, Any] = {}
    for key, value in out.items():
        if key in ("services",):
            formatted[key] = {n: _format(s, None, None, escape_dollars)
                              for n, s in value.items()}
        else:
            formatted[key] = _format(value, None, key, escape_dollars)
    return formatted


def dump_yaml(doc: Any) -> str:
    import yaml

    try:
        dumper: Any = yaml.CSafeDumper
    except AttributeError:  # pragma: no cover
        dumper = yaml.SafeDumper
    return str(yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=1 << 16))


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
