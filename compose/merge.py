"""Stage: merge canonical documents (``-f`` files in order, or ``extends`` onto its base).

Compose merge rules, kept in :data:`MERGE_RULES` keyed by path pattern:

* mappings merge key by key (recursively); scalars from the later file win;
* sequences are appended, then de-duplicated by each key's identity: ports by
  (host IP, published, target, protocol), volumes by target, secrets and
  configs by target, env files by path, other lists by value;
* ``command``, ``entrypoint`` and ``healthcheck.test`` are replaced whole;
* ``logging`` with a different driver is replaced, with the same driver the
  options merge; ``ulimits`` entries are replaced whole;
* a value tagged ``!override`` replaces the earlier one whole, a key tagged
  ``!reset`` is removed.

:func:`strip_markers` turns what is left of the tags into plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .keypath import KeyPath, RuleTable
from .yamlread import RESET, OverrideList, OverrideMapping

__all__ = ["MERGE_RULES", "merge", "merge_documents", "strip_markers"]

Rule = Callable[[Any, Any, KeyPath], Any]


def strip_markers(value: Any) -> Any:
    """A copy without ``!override`` classes and without keys whose value is ``!reset``."""
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [strip_markers(v) for v in value if v is not RESET]
    if value is RESET:
        return None
    return value


def _override(base: Any, over: Any, path: KeyPath) -> Any:
    return over


def _unique(key: Callable[[Any], Any]) -> Rule:
    """Append, keeping the last entry for each identity at the position of the first."""

    def rule(base: Any, over: Any, path: KeyPath) -> Any:
        if not isinstance(base, list) or not isinstance(over, list):
            return over
        out: dict[Any, Any] = {}
        for item in [*base, *over]:
            ident = key(item)
            if ident in out and isinstance(out[ident], dict) and isinstance(item, dict):
                out[ident] = {**out[ident], **item}
            else:
                out[ident] = item
        return list(out.values())

    return rule


def _ident(item: Any) -> Any:
    if isinstance(item, dict):
        return repr(sorted(item.items(), key=lambda kv: kv[0]))
    if isinstance(item, list):
        return repr(item)
    return item


def _port_key(port: Any) -> Any:
    if not isinstance(port, dict):
        return port
    return (port.get("host_ip"), port.get("published"), port.get("target"),
            port.get("protocol", "tcp"), port.get("mode", "ingress"))


def _target_key(vol: Any) -> Any:
    return vol.get("target") if isinstance(vol, dict) else vol


def _file_ref_key(ref: Any) -> Any:
    if not isinstance(ref, dict):
        return ref
    return ref.get("target") or ref.get("source")


def _env_file_key(entry: Any) -> Any:
    return entry.get("path") if isinstance(entry, dict) else entry


def _extra_host_key(entry: Any) -> Any:
    return entry


def _logging(base: Any, over: Any, path: KeyPath) -> Any:
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    if over.get("driver") and base.get("driver") and over["driver"] != base["driver"]:
        return over
    out = {**base, **{k: v for k, v in over.items() if k != "options"}}
    options = {**(base.get("options") or {}), **(over.get("options") or {})}
    if options:
        out["options"] = options
    return out


def _ipam_config(base: Any, over: Any, path: KeyPath) -> Any:
    return _unique(lambda pool: pool.get("subnet") if isinstance(pool, dict) else pool)(
        base, over, path)


MERGE_RULES: RuleTable[Rule] = RuleTable({
    "services.*.command": _override,
    "services.*.entrypoint": _override,
    "services.*.healthcheck.test": _override,
    "services.*.ports": _unique(_port_key),
    "services.*.volumes": _unique(_target_key),
    "services.*.secrets": _unique(_file_ref_key),
    "services.*.configs": _unique(_file_ref_key),
    "services.*.env_file": _unique(_env_file_key),
    "services.*.extra_hosts": _unique(_extra_host_key),
    "services.*.build.extra_hosts": _unique(_extra_host_key),
    "services.*.logging": _logging,
    "services.*.ulimits.*": _override,
    "services.*.devices": _unique(lambda d: d.split(":")[1] if isinstance(d, str) and ":" in d
                                  else _ident(d)),
    "networks.*.ipam.config": _ipam_config,
})


def merge(base: Any, over: Any, path: KeyPath = ()) -> Any:
    """Merge ``over`` onto ``base`` at ``path``; neither input is changed."""
    if over is RESET:
        return RESET
    if isinstance(over, OverrideMapping | OverrideList):
        return over
    rule = MERGE_RULES.find(path) if path else None
    if rule is not None and base is not None and base is not RESET:
        return rule(base, over, path)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is RESET:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, (*path, key))
            else:
                out[key] = value
        return out
    if isinstance(base, list) and isinstance(over, list):
        seen: dict[Any, Any] = {}
        for item in [*base, *over]:
            seen.setdefault(_ident(item), item)
        return list(seen.values())
    return over


def merge_documents(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge whole documents in order (the first is the base)."""
    result: dict[str, Any] = {}
    for doc in docs:
        result = merge(result, doc)
    return result
