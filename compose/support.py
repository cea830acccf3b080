"""Keys pycompose reads and keeps in the model but does not act on yet.

Each is reported once per service as a warning (never silently ignored).
The engine's authors remove an entry when the runtime learns the feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["UNSUPPORTED_SERVICE_KEYS", "UNSUPPORTED_DEPLOY_KEYS", "unsupported_warnings"]

UNSUPPORTED_SERVICE_KEYS: Mapping[str, str] = {
    "blkio_config": "block I/O weights and limits",
    "cgroup_parent": "a custom cgroup parent",
    "cpu_count": "Windows CPU counts",
    "cpu_percent": "Windows CPU percentages",
    "cpu_rt_period": "real-time CPU scheduling",
    "cpu_rt_runtime": "real-time CPU scheduling",
    "credential_spec": "Windows credential specs",
    "develop": "watch mode",
    "gpus": "GPU devices",
    "isolation": "Windows isolation modes",
    "mem_swappiness": "memory swappiness",
    "models": "AI models",
    "oom_kill_disable": "disabling the OOM killer",
    "provider": "provider services",
    "runtime": "alternative OCI runtimes",
    "storage_opt": "storage driver options",
    "use_api_socket": "the Docker API socket",
    "userns_mode": "user namespace remapping",
}

UNSUPPORTED_DEPLOY_KEYS: Mapping[str, str] = {
    "placement": "swarm placement",
    "update_config": "rolling updates",
    "rollback_config": "rollbacks",
    "endpoint_mode": "swarm endpoint modes",
}


def unsupported_warnings(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One warning per (service, key) that is set but not acted on, sorted."""
    out = []
    for name in sorted(services):
        svc = services[name]
        for key in sorted(svc):
            if key in UNSUPPORTED_SERVICE_KEYS and svc[key] is not None:
                out.append(f'service "{name}": "{key}" ({UNSUPPORTED_SERVICE_KEYS[key]}) '
                           "is not supported yet and is ignored")
        deploy = svc.get("deploy") or {}
        for key in sorted(deploy):
            if key in UNSUPPORTED_DEPLOY_KEYS:
                out.append(f'service "{name}": "deploy.{key}" ({UNSUPPORTED_DEPLOY_KEYS[key]}) '
                           "is not supported yet and is ignored")
    return out
