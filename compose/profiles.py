"""Stage: keep the services that the active profiles (or the command line) enable.

A service without ``profiles`` is always enabled; one with profiles only when
one of them is active (``*`` activates all), or when it is named on the
command line. Services named on the command line pull in the services they
depend on, whatever their profiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["apply_profiles", "dependency_names"]


def dependency_names(service: Mapping[str, Any]) -> set[str]:
    """Services a canonical service dict needs (depends_on, links, ``service:`` modes,
    volumes_from)."""
    deps = set((service.get("depends_on") or {}).keys())
    for link in service.get("links") or ():
        deps.add(str(link).split(":", 1)[0])
    for key in ("network_mode", "ipc", "pid", "uts", "cgroup"):
        value = service.get(key)
        if isinstance(value, str) and value.startswith("service:"):
            deps.add(value[len("service:"):])
    for vf in service.get("volumes_from") or ():
        text = str(vf)
        if text.startswith("container:"):
            continue
        if text.startswith("service:"):
            text = text[len("service:"):]
        deps.add(text.split(":", 1)[0])
    return deps


def apply_profiles(services: Mapping[str, dict[str, Any]], active: Iterable[str],
                   selected: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``services`` into (enabled, disabled) by profile and selection."""
    active_set = set(active)
    enabled: set[str] = set()
    for name, svc in services.items():
        profiles = svc.get("profiles") or ()
        if not profiles or "*" in active_set or active_set & set(profiles):
            enabled.add(name)
    todo = [n for n in selected if n in services]
    while todo:
        name = todo.pop()
        if name in enabled and name not in selected:
            continue
        enabled.add(name)
        todo.extend(d for d in dependency_names(services[name])
                    if d in services and d not in enabled)
    on = {n: s for n, s in services.items() if n in enabled}
    off = {n: s for n, s in services.items() if n not in enabled}
    return on, off
