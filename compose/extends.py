"""Stage: resolve ``extends`` in one canonical document.

``extends: {service: base}`` copies ``base`` from the same file, ``extends:
{service: base, file: other.yaml}`` from another file (loaded by the caller's
``load_file``, which canonicalises it against that file's own directory, so
its relative paths stay right). The local service is then merged onto the
base with the ordinary merge rules. Chains are followed; a loop is a
:class:`MergeError` that prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import MergeError
from .merge import merge

__all__ = ["apply_extends"]

LoadFile = Callable[[str], dict[str, Any]]


def apply_extends(doc: dict[str, Any], *, file: str, load_file: LoadFile,
                  display: Callable[[str], str] = str) -> dict[str, Any]:
    """Return ``doc`` with every service's ``extends`` resolved (and the key removed).

    ``load_file`` returns another file's canonical document with its own
    ``extends`` left in place; ``display`` turns a path into the name errors show.
    """
    services = doc.get("services")
    if not isinstance(services, dict) or not any(
            isinstance(s, dict) and "extends" in s for s in services.values()):
        return doc
    resolved: dict[tuple[str, str], dict[str, Any]] = {}
    out = {name: _resolve(file, name, doc, load_file, resolved, (), display)
           for name in services}
    return {**doc, "services": out}


def _resolve(file: str, name: str, doc: dict[str, Any], load_file: LoadFile,
             resolved: dict[tuple[str, str], dict[str, Any]],
             stack: tuple[tuple[str, str], ...],
             display: Callable[[str], str]) -> dict[str, Any]:
    key = (file, name)
    if key in resolved:
        return resolved[key]
    if key in stack:
        chain = " -> ".join(n for _, n in (*stack[stack.index(key):], key))
        first_file, first = stack[0]
        raise MergeError(display(first_file), f"services.{first}.extends",
                         f"circular extends: {chain}")
    services = doc.get("services") or {}
    service = services.get(name)
    if not isinstance(service, dict):
        raise MergeError(display(file), f"services.{name}", "service not found")
    ext = service.get("extends")
    if not isinstance(ext, dict):
        resolved[key] = service
        return service
    base_file = ext.get("file") or file
    base_name = ext["service"]
    base_doc = doc if base_file == file else load_file(base_file)
    base_services = base_doc.get("services") or {}
    if base_name not in base_services:
        where = "" if base_file == file else f" in {display(base_file)}"
        raise MergeError(display(file), f"services.{name}.extends",
                         f'cannot extend service "{base_name}": no such service{where}')
    base = _resolve(base_file, base_name, base_doc, load_file, resolved, (*stack, key),
                    display)
    local = {k: v for k, v in service.items() if k != "extends"}
    merged: dict[str, Any] = merge(base, local, ("services", name))
    resolved[key] = merged
    return merged
