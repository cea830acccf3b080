"""Compose files to a validated, immutable Project model; the dependency graph; the scheduler.

Knows Compose and nothing about syscalls. Imports nothing else of pycompose.

The loader's public names are re-exported here, imported on first use so that
``import pycompose.compose.errors`` (or the CLI's start) stays cheap::

    from pycompose.compose import LoadOptions, load_project, config_hash, build_graph
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from .graph import build_graph as build_graph
    from .graph import select_services as select_services
    from .graph import start_order as start_order
    from .hashing import config_hash as config_hash
    from .loader import LoadOptions as LoadOptions
    from .loader import Stage as Stage
    from .loader import load_document as load_document
    from .loader import load_project as load_project
    from .model import Project as Project
    from .model import Service as Service
    from .serialize import project_to_dict as project_to_dict

_EXPORTS = {
    "LoadOptions": "loader", "Stage": "loader", "load_document": "loader",
    "load_project": "loader", "Project": "model", "Service": "model",
    "config_hash": "hashing", "build_graph": "graph", "select_services": "graph",
    "start_order": "graph", "project_to_dict": "serialize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
