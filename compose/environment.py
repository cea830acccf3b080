"""Resolve a service's environment: ``env_file`` entries first, ``environment`` over them.

A key given without a value (``- DEBUG``) takes its value from the project
environment (the shell, then ``.env``), even over an ``env_file`` value; when
it is set nowhere it stays ``None`` (shown as ``DEBUG: null``, passed to no
container), as docker compose does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .dotenv import EnvFileSpec, read_env_files

__all__ = ["resolve_environment", "resolve_labels"]


def resolve_environment(service: Mapping[str, Any], project_env: Mapping[str, str],
                        warn: Callable[[str], None] | None = None) -> dict[str, str | None]:
    """The resolved environment of one canonical service dict."""
    env: dict[str, str | None] = {}
    files = service.get("env_file") or ()
    if files:
        specs = [EnvFileSpec(path=f["path"], required=bool(f.get("required", True)),
                             format=f.get("format")) for f in files]
        env.update(read_env_files(specs, project_env, warn=warn))
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            # A bare key overrides the env_file: it is the shell's value or nothing.
            env[key] = project_env.get(key)
        else:
            env[key] = value
    return env


def resolve_labels(service: Mapping[str, Any], project_env: Mapping[str, str],
                   warn: Callable[[str], None] | None = None) -> dict[str, str]:
    """``label_file`` entries (``.env`` syntax) first, ``labels`` over them."""
    labels: dict[str, str] = dict(read_env_files(service.get("label_file") or (), project_env,
                                                 warn=warn))
    labels.update(service.get("labels") or {})
    return labels
