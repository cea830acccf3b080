"""Stage: whole-project checks on the merged, canonical document.

Every problem is collected (never just the first) as :class:`SchemaError`
naming the file that defines the service and the key path. Checked here:
image or build present, references (``depends_on``, ``links``,
``networks``, named ``volumes``, ``secrets``, ``configs``, ``network_mode:
service:x``, ``volumes_from``, ``ipc``/``pid``), mutually exclusive keys, the
resource limits given twice with different values, and dependency cycles
(without networkx, so ``config`` stays light; :mod:`.graph` reports the same
cycles the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ComposeFileError, DependencyCycleError, SchemaError
from .profiles import dependency_names

__all__ = ["check_project", "find_cycle"]

FileOf = Callable[[str], str | None]


def check_project(doc: Mapping[str, Any], *, file_of: FileOf,
                  all_services: Mapping[str, Any]) -> list[ComposeFileError]:
    """Return every problem in ``doc`` (enabled services only in ``doc['services']``).

    ``all_services`` also holds the services disabled by profiles: a reference
    to one of them is not an error here (``up`` reports it when it matters).
    """
    errors: list[ComposeFileError] = []
    services: Mapping[str, Any] = doc.get("services") or {}
    networks = set(doc.get("networks") or {}) | {"default"}
    volumes = set(doc.get("volumes") or {})
    secrets = set(doc.get("secrets") or {})
    configs = set(doc.get("configs") or {})

    for name in sorted(services):
        svc = services[name]
        f = file_of(name)

        def err(path: str, msg: str, _name: str = name, _f: str | None = f) -> None:
            errors.append(SchemaError(_f, f"services.{_name}{path}", msg))

        if not svc.get("image") and not svc.get("build"):
            err("", "has neither an image nor a build context specified")
        for dep in sorted(svc.get("depends_on") or {}):
            if dep not in all_services:
                err(f".depends_on.{dep}", f'depends on undefined service "{dep}"')
        for i, link in enumerate(svc.get("links") or ()):
            target = str(link).split(":", 1)[0]
            if target not in all_services:
                err(f".links[{i}]", f'links to undefined service "{target}"')
        if svc.get("network_mode") and svc.get("networks"):
            err(".network_mode", 'cannot be combined with "networks"')
        for key in ("network_mode", "ipc", "pid", "uts", "cgroup"):
            value = svc.get(key)
            if isinstance(value, str) and value.startswith("service:"):
                target = value[len("service:"):]
                if target not in all_services:
                    err(f".{key}", f'refers to undefined service "{target}"')
        nm = svc.get("network_mode")
        if isinstance(nm, str) and nm not in ("host", "none", "bridge", "default") \
                and not nm.startswith(("service:", "container:")):
            err(".network_mode", f'invalid network mode "{nm}" (expected "bridge", "host", '
                                 '"none", "service:NAME" or "container:NAME")')
        for i, vf in enumerate(svc.get("volumes_from") or ()):
            text = str(vf)
            if text.startswith("container:"):
                continue
            target = text.removeprefix("service:").split(":", 1)[0]
            if target not in all_services:
                err(f".volumes_from[{i}]", f'refers to undefined service "{target}"')
        for net in sorted(svc.get("networks") or {}):
            if net not in networks:
                err(f".networks.{net}", f'refers to undefined network "{net}"')
        for i, vol in enumerate(svc.get("volumes") or ()):
            if isinstance(vol, dict) and vol.get("type") == "volume" and vol.get("source") \
                    and vol["source"] not in volumes:
                err(f".volumes[{i}]", f'refers to undefined volume "{vol["source"]}"')
        for key, declared in (("secrets", secrets), ("configs", configs)):
            for i, ref in enumerate(svc.get(key) or ()):
                source = ref.get("source") if isinstance(ref, dict) else ref
                if source not in declared:
                    err(f".{key}[{i}]", f'refers to undefined {key[:-1]} "{source}"')
        _check_limits(svc, err)

    cycle = find_cycle({n: dependency_names(s) for n, s in services.items()})
    if cycle:
        first = cycle[0]
        if len(cycle) == 2:
            msg = f"{first} depends on itself (dependency cycle: {' -> '.join(cycle)})"
        else:
            msg = f"dependency cycle detected: {' -> '.join(cycle)}"
        errors.append(DependencyCycleError(file_of(first), f"services.{first}", msg))
    return errors


def _check_limits(svc: Mapping[str, Any], err: Callable[[str, str], None]) -> None:
    limits = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {})
    for key, deploy_key in (("mem_limit", "memory"), ("cpus", "cpus"), ("pids_limit", "pids")):
        a, b = svc.get(key), limits.get(deploy_key)
        if a is not None and b is not None and a != b:
            err(f".{key}", f"differs from deploy.resources.limits.{deploy_key} "
                           f"({a} != {b}); set one of them")
    scale = svc.get("scale")
    replicas = (svc.get("deploy") or {}).get("replicas")
    if scale is not None and replicas is not None and scale != replicas:
        err(".scale", f"differs from deploy.replicas ({scale} != {replicas})")


def find_cycle(deps: Mapping[str, set[str]]) -> list[str] | None:
    """The first dependency cycle, walking names in sorted order: ``[a, b, a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(deps.get(node, ())):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for name in sorted(deps):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def cycle_error(cycle: list[str], file: str | None) -> DependencyCycleError:
    return DependencyCycleError(file, f"services.{cycle[0]}",
                                f"dependency cycle detected: {' -> '.join(cycle)}")
